import { EventEmitter, once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedDelivery {
  deliveryId: string;
  signature: string;
  body: string;
  /** The W3C `traceparent` header, when the gateway traces. */
  traceparent?: string;
  /** 1-based: the how-manieth request this receiver got. */
  seq: number;
}

/** What the receiver does with a request: answer with a status, or hold it open until `release()`. */
export type Responder = (delivery: ReceivedDelivery) => number | "hang";

/**
 * An HTTP server in the test process that alert webhooks point at: it records every request and
 * answers as `respond` says. Tests wait on its events (`waitFor`), never on time.
 */
export class WebhookReceiver {
  readonly received: ReceivedDelivery[] = [];
  /** Requests held open by a "hang" answer and not yet ended (by `release()` or by the client giving up). */
  readonly hanging = new Set<ServerResponse>();
  /** Held requests the client gave up on (closed before the receiver answered). */
  abandoned = 0;
  private readonly events = new EventEmitter();
  private readonly server = createServer((request, response) => void this.handle(request, response));

  private constructor(public respond: Responder) {}

  static async start(respond: Responder = () => 200): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver(respond);
    receiver.server.listen(0, "127.0.0.1");
    await once(receiver.server, "listening");
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  /** Resolves when `predicate` holds (checked now and after every request or closed hang). */
  async waitFor(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    if (predicate()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off("change", check);
        reject(new Error(`webhook receiver: ${what} did not happen within ${timeoutMs} ms; received ${this.received.length}`));
      }, timeoutMs);
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.events.off("change", check);
        resolve();
      };
      this.events.on("change", check);
    });
  }

  /** Answers every held request with 200. */
  release(): void {
    for (const response of this.hanging) response.writeHead(200).end();
    this.hanging.clear();
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const delivery: ReceivedDelivery = {
      deliveryId: String(request.headers["x-alert-delivery"] ?? ""),
      signature: String(request.headers["x-alert-signature"] ?? ""),
      body: Buffer.concat(chunks).toString("utf8"),
      traceparent: typeof request.headers.traceparent === "string" ? request.headers.traceparent : undefined,
      seq: this.received.length + 1,
    };
    this.received.push(delivery);
    const answer = this.respond(delivery);
    if (answer === "hang") {
      this.hanging.add(response);
      response.on("close", () => {
        if (this.hanging.delete(response)) {
          this.abandoned++;
          this.events.emit("change");
        }
      });
    } else {
      response.writeHead(answer, { "content-type": "text/plain" }).end(answer < 300 ? "ok" : "not now");
    }
    this.events.emit("change");
  }
}
