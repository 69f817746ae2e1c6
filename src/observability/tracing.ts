import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from "@opentelemetry/api";

/**
 * Tracing (CONTRACT §6.5): OpenTelemetry over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
 * The services use only the functions below. Off, the SDK is never loaded and each function is a
 * flag test and a direct call: no span objects, no context switches.
 *
 * A command's trace is carried by its W3C `traceparent`, stored with the command (so a reply handled
 * on another replica or after a restart joins it by command id) and sent in the command message
 * (so a device that echoes it puts its replies under the publish span).
 */
export { SpanKind };

const TRACER_NAME = "iot-gateway";
const DEFAULT_SERVICE_NAME = "iot-gateway";

let tracer: Tracer | undefined;

export interface Tracing {
  enabled: boolean;
  /** Exports what is still buffered, then stops (at shutdown). */
  shutdown(): Promise<void>;
}

/**
 * Starts the SDK when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the exporter reads it and the other
 * standard OTEL_* variables itself; `OTEL_SERVICE_NAME` names the service, `iot-gateway` by default).
 */
export async function startTracing(env: NodeJS.ProcessEnv = process.env): Promise<Tracing> {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT) return { enabled: false, shutdown: async () => {} };
  // Loaded only here: a gateway without tracing never loads the SDK.
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes, detectResources, envDetector }] = await Promise.all([
    import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
  ]);
  const resource = resourceFromAttributes({ "service.name": DEFAULT_SERVICE_NAME }).merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  // Installs the AsyncLocalStorage context manager and the W3C trace-context propagator.
  provider.register();
  tracer = trace.getTracer(TRACER_NAME);
  return {
    enabled: true,
    shutdown: async () => {
      tracer = undefined;
      await provider.shutdown();
    },
  };
}

export function tracingEnabled(): boolean {
  return tracer !== undefined;
}

export interface SpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  /**
   * The trace to join when the active span is not already in it: a received or stored traceparent,
   * the first valid of several (none valid: the active context).
   */
  parent?: string | Array<string | undefined>;
  /** Starts a new trace whatever is active (a telemetry message, a fleet child). */
  root?: boolean;
  /** Traces this span relates to without being their child (a fleet child and its fleet command). */
  links?: Array<string | undefined>;
}

/** Runs `fn` in a new active span that ends when `fn` returns or settles; a throw or rejection marks it an error. */
export function inSpan<T>(name: string, options: SpanOptions, fn: (span?: Span) => T): T {
  if (!tracer) return fn();
  const parent = options.root ? ROOT_CONTEXT : parentContext(options.parent);
  const links = (options.links ?? []).map(linkTo).filter((link): link is Link => link !== undefined);
  const span = tracer.startSpan(name, { kind: options.kind, attributes: options.attributes, links, root: options.root }, parent);
  const failed = (error: unknown) => {
    span.recordException(error as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message });
  };
  let result: T;
  try {
    result = context.with(trace.setSpan(parent, span), fn, undefined, span);
  } catch (error) {
    failed(error);
    span.end();
    throw error;
  }
  if (result instanceof Promise) {
    return result.then(
      (value) => {
        span.end();
        return value;
      },
      (error: unknown) => {
        failed(error);
        span.end();
        throw error;
      },
    ) as T;
  }
  span.end();
  return result;
}

/** Runs `fn` in the trace of `traceparent` (no span of its own), unless the active span is in it already. */
export function inTraceOf<T>(traceparent: string | undefined, fn: () => T): T {
  if (!tracer || !traceparent) return fn();
  return context.with(parentContext(traceparent), fn);
}

/** `fn` bound to the active context, for callbacks a library runs from elsewhere (a broker's PUBACK). */
export function bindToActive<F extends (...args: never[]) => unknown>(fn: F): F {
  return tracer ? context.bind(context.active(), fn) : fn;
}

/** Adds attributes to the active span (what is known only part-way, such as a new command's id), and renames it. */
export function annotate(attributes: Attributes, name?: string): void {
  if (!tracer) return;
  const span = trace.getActiveSpan();
  span?.setAttributes(attributes);
  if (name) span?.updateName(name);
}

/** The active span's W3C traceparent, to store with a command or send in a message; undefined when off. */
export function activeTraceparent(): string | undefined {
  if (!tracer || !trace.getActiveSpan()) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}

/** Log fields of the active span (pino's mixin): trace_id and span_id, nothing when no span is active. */
export function traceLogFields(): Record<string, string> {
  if (!tracer) return {};
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/** The active context if its span is in the given trace (or there is none to join), else that trace's context. */
function parentContext(traceparents: string | Array<string | undefined> | undefined): Context {
  const active = context.active();
  for (const traceparent of typeof traceparents === "string" ? [traceparents] : (traceparents ?? [])) {
    if (!traceparent) continue;
    const remote = propagation.extract(ROOT_CONTEXT, { traceparent });
    const remoteSpan = trace.getSpanContext(remote);
    if (!remoteSpan || !trace.isSpanContextValid(remoteSpan)) continue;
    return trace.getSpanContext(active)?.traceId === remoteSpan.traceId ? active : remote;
  }
  return active;
}

function linkTo(traceparent: string | undefined): Link | undefined {
  if (!traceparent) return undefined;
  const linked = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, { traceparent }));
  return linked && trace.isSpanContextValid(linked) ? { context: linked } : undefined;
}
