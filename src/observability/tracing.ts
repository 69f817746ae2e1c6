import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type ContextManager,
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
 *
 * Within a process a span's context is handed on explicitly (`TraceContext`), not followed across
 * awaits by a context manager: on Node 20 AsyncLocalStorage's promise hooks alone cost about 10 % of
 * the gateway's CPU per command. The context manager installed is synchronous: a context is active
 * while the function given `inSpan` or `inTrace` runs, up to its first await.
 */
export { SpanKind };

/** A span's place in its trace, to hand on to work that continues it; undefined when tracing is off. */
export type TraceContext = Context | undefined;

const TRACER_NAME = "iot-gateway";
const DEFAULT_SERVICE_NAME = "iot-gateway";
const EXPORT_BATCH_SIZE = 128;

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
  // Encoding a batch holds the event loop (about 1 ms per 100 spans on a small machine): smaller batches
  // than the SDK's 512 hold it less long at a time. OTEL_BSP_MAX_EXPORT_BATCH_SIZE still decides when set.
  const batching = env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE ? {} : { maxExportBatchSize: EXPORT_BATCH_SIZE };
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter(), batching)] });
  // The W3C trace-context propagator, and the synchronous context manager instead of AsyncLocalStorage's.
  provider.register({ contextManager: new SynchronousContextManager() });
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
   * Where the span belongs: a context handed on, or a trace to join when the active span is not
   * already in it (a received or stored traceparent, the first valid of several; none valid: the
   * active context).
   */
  parent?: TraceContext | string | Array<string | undefined>;
  /** Starts a new trace whatever is active (a telemetry message, a fleet child). */
  root?: boolean;
  /** Traces this span relates to without being their child (a fleet child and its fleet command). */
  links?: Array<string | undefined>;
}

/**
 * Runs `fn` in a new span that ends when `fn` returns or settles; a throw or rejection marks it an
 * error. `fn` gets the span's context to hand on to what it does after an await.
 */
export function inSpan<T>(name: string, options: SpanOptions, fn: (trace: TraceContext) => T): T {
  if (!tracer) return fn(undefined);
  const parent = options.root ? ROOT_CONTEXT : parentContext(options.parent);
  const links = options.links?.map(linkTo).filter((link): link is Link => link !== undefined);
  const span = tracer.startSpan(name, { kind: options.kind, attributes: options.attributes, links, root: options.root }, parent);
  const inside = trace.setSpan(parent, span);
  let result: T;
  try {
    result = context.with(inside, fn, undefined, inside);
  } catch (error) {
    endFailed(span, error);
    throw error;
  }
  if (result instanceof Promise) {
    return result.then(
      (value) => {
        span.end();
        return value;
      },
      (error: unknown) => {
        endFailed(span, error);
        throw error;
      },
    ) as T;
  }
  span.end();
  return result;
}

function endFailed(span: Span, error: unknown): void {
  span.recordException(error as Error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message });
  span.end();
}

/** Runs `fn` with `ctx` active (its log lines carry the span's ids; spans it starts at once are children). */
export function inTrace<T>(ctx: TraceContext, fn: () => T): T {
  return tracer && ctx ? context.with(ctx, fn) : fn();
}

/** The active context (a span's, synchronously inside `inSpan` or `inTrace`), to hand on; undefined when off or none. */
export function activeTrace(): TraceContext {
  if (!tracer) return undefined;
  const active = context.active();
  return trace.getSpan(active) ? active : undefined;
}

/** Adds attributes to the context's span (what is known only part-way, such as a new command's id), and renames it. */
export function annotate(ctx: TraceContext, attributes: Attributes, name?: string): void {
  if (!tracer || !ctx) return;
  const span = trace.getSpan(ctx);
  span?.setAttributes(attributes);
  if (name) span?.updateName(name);
}

/** Records a moment in the context's span: a step done (the CASL check, validation). */
export function recordEvent(ctx: TraceContext, name: string, attributes?: Attributes): void {
  if (tracer && ctx) trace.getSpan(ctx)?.addEvent(name, attributes);
}

/**
 * Runs `fn` (something short, such as publishing an event) as an event of the active span when that
 * span is in the trace of `options.parent` and not ended yet, else in a span of its own in that trace.
 */
export function inEventOrSpan<T>(name: string, options: SpanOptions & { parent: string | undefined }, fn: () => T): T {
  if (!tracer) return fn();
  const active = trace.getActiveSpan();
  if (active?.isRecording() && options.parent && traceIdOf(options.parent) === active.spanContext().traceId) {
    active.addEvent(name, options.attributes);
    return fn();
  }
  return inSpan(name, options, fn);
}

/** The W3C traceparent of the context's span, to store with a command or send in a message; undefined when off. */
export function traceparentOf(ctx: TraceContext): string | undefined {
  if (!tracer || !ctx || !trace.getSpan(ctx)) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
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

/** The handed-on context; else the active one if its span is in the given trace (or there is none to join), else that trace's context. */
function parentContext(parent: SpanOptions["parent"]): Context {
  if (parent !== undefined && typeof parent !== "string" && !Array.isArray(parent)) return parent;
  const active = context.active();
  const activeTraceId = trace.getSpanContext(active)?.traceId;
  for (const traceparent of typeof parent === "string" ? [parent] : (parent ?? [])) {
    if (!traceparent) continue;
    if (activeTraceId !== undefined && traceIdOf(traceparent) === activeTraceId) return active;
    const remote = remoteContext(traceparent);
    if (remote) return remote;
  }
  return active;
}

/** The trace id of a W3C traceparent ("00-<trace id>-<parent id>-<flags>"), unchecked. */
function traceIdOf(traceparent: string): string {
  return traceparent.slice(3, 35);
}

function linkTo(traceparent: string | undefined): Link | undefined {
  const linked = traceparent ? remoteContext(traceparent) : undefined;
  return linked ? { context: trace.getSpanContext(linked)! } : undefined;
}

/** Recently joined traceparents: a command's stored one is parsed once for its writes, its publish and its replies. */
const remoteContexts = new Map<string, Context | null>();
const REMOTE_CONTEXTS_KEPT = 1024;

/** The context of a received or stored traceparent; undefined when it is not a valid one. */
function remoteContext(traceparent: string): Context | undefined {
  let remote = remoteContexts.get(traceparent);
  if (remote === undefined) {
    const extracted = propagation.extract(ROOT_CONTEXT, { traceparent });
    const spanContext = trace.getSpanContext(extracted);
    remote = spanContext && trace.isSpanContextValid(spanContext) ? extracted : null;
    if (remoteContexts.size >= REMOTE_CONTEXTS_KEPT) remoteContexts.clear();
    remoteContexts.set(traceparent, remote);
  }
  return remote ?? undefined;
}

/**
 * A context is active while a function given `context.with` runs synchronously, and is restored when
 * it returns: continuations after an await start from the root. Work that continues a span after an
 * await is handed its `TraceContext`.
 */
class SynchronousContextManager implements ContextManager {
  private current: Context = ROOT_CONTEXT;

  active(): Context {
    return this.current;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    const previous = this.current;
    this.current = ctx;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.current = previous;
    }
  }

  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== "function") return target;
    const manager = this;
    return function (this: unknown, ...args: unknown[]) {
      return manager.with(ctx, () => (target as (...a: unknown[]) => unknown).apply(this, args));
    } as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.current = ROOT_CONTEXT;
    return this;
  }
}
