import { EventEmitter, once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";

/** OTLP span kinds (opentelemetry-proto `Span.SpanKind`). */
export const SPAN_KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Empty for a trace's root. */
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean>;
  links: Array<{ traceId: string; spanId: string }>;
  /** Moments recorded in the span (a subscription event published while it ran). */
  events: Array<{ name: string; attributes: Record<string, string | number | boolean> }>;
  /** The exporting service's `service.name` resource attribute. */
  service: string;
  /** 2: ERROR (opentelemetry-proto `Status.StatusCode`). */
  statusCode: number;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpKeyValue {
  key: string;
  value: OtlpValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: OtlpKeyValue[];
  links?: Array<{ traceId: string; spanId: string }>;
  events?: Array<{ name: string; attributes?: OtlpKeyValue[] }>;
  status?: { code?: number };
}
interface OtlpTraceRequest {
  resourceSpans?: Array<{ resource?: { attributes?: OtlpKeyValue[] }; scopeSpans?: Array<{ spans?: OtlpSpan[] }> }>;
}

/**
 * An OTLP/HTTP trace receiver in the test (or benchmark) process: `POST /v1/traces` with the JSON
 * encoding that the OTLP/HTTP exporter sends (`application/json`, optionally gzip). It keeps every
 * span (`keep: false`: only counts them, without decoding, for a benchmark) and answers 200 with an empty
 * ExportTraceServiceResponse.
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  spanCount = 0;
  requests = 0;
  private readonly events = new EventEmitter();
  private readonly server = createServer((request, response) => void this.handle(request, response));

  private constructor(private readonly keep: boolean) {}

  static async start(options: { keep?: boolean } = {}): Promise<OtlpReceiver> {
    const receiver = new OtlpReceiver(options.keep ?? true);
    receiver.server.listen(0, "127.0.0.1");
    await once(receiver.server, "listening");
    return receiver;
  }

  /** What OTEL_EXPORTER_OTLP_ENDPOINT is set to (the exporter appends /v1/traces). */
  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Resolves when `predicate` holds (checked now and after every export). */
  async waitFor(predicate: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    if (predicate()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off("spans", check);
        reject(new Error(`OTLP receiver: ${what} did not happen within ${timeoutMs} ms; got ${this.spanCount} spans: ${this.spans.map((s) => s.name).join(", ")}`));
      }, timeoutMs);
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.events.off("spans", check);
        resolve();
      };
      this.events.on("spans", check);
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    if (request.method !== "POST" || request.url !== "/v1/traces" || !String(request.headers["content-type"]).startsWith("application/json")) {
      response.writeHead(415).end();
      return;
    }
    let body = Buffer.concat(chunks);
    if (request.headers["content-encoding"] === "gzip") body = gunzipSync(body);
    this.requests++;
    if (this.keep) {
      const spans = decode(JSON.parse(body.toString("utf8")) as OtlpTraceRequest);
      this.spanCount += spans.length;
      this.spans.push(...spans);
    } else {
      this.spanCount += countSpans(body);
    }
    response.writeHead(200, { "content-type": "application/json" }).end("{}");
    this.events.emit("spans");
  }
}

/**
 * The spans of an export, counted without decoding it (a benchmark's sink must cost less than the
 * gateway it measures): in OTLP JSON every span, and nothing else, has a "kind" field.
 */
function countSpans(body: Buffer): number {
  let count = 0;
  for (let at = body.indexOf(KIND_FIELD); at !== -1; at = body.indexOf(KIND_FIELD, at + KIND_FIELD.length)) count++;
  return count;
}
const KIND_FIELD = '"kind":';

function decode(request: OtlpTraceRequest): ReceivedSpan[] {
  return (request.resourceSpans ?? []).flatMap((resourceSpans) => {
    const service = String(attributesOf(resourceSpans.resource?.attributes)["service.name"] ?? "");
    return (resourceSpans.scopeSpans ?? []).flatMap((scope) =>
      (scope.spans ?? []).map((span) => ({
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId ?? "",
        name: span.name,
        kind: span.kind,
        attributes: attributesOf(span.attributes),
        links: (span.links ?? []).map(({ traceId, spanId }) => ({ traceId, spanId })),
        events: (span.events ?? []).map(({ name, attributes }) => ({ name, attributes: attributesOf(attributes) })),
        service,
        statusCode: span.status?.code ?? 0,
      })),
    );
  });
}

function attributesOf(list: OtlpKeyValue[] | undefined): Record<string, string | number | boolean> {
  const attributes: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    const v = value.stringValue ?? value.boolValue ?? value.doubleValue ?? (value.intValue === undefined ? undefined : Number(value.intValue));
    if (v !== undefined) attributes[key] = v;
  }
  return attributes;
}
