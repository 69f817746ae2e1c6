import type { ChildProcess } from "node:child_process";

/** Memory of a child after a full GC, in bytes. */
export interface MemorySample {
  rss: number;
  heapUsed: number;
}

export type ChildRequestBody = { kind: "memory" } | { kind: "storeOps" } | { kind: "storeOpsByCollection" } | { kind: "commandStoreOps"; ids: string[]; over?: number } | { kind: "spans" } | { kind: "stop" };
export type ChildRequest = ChildRequestBody & { id: number };

export type ChildReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

/** What a child says once it is ready to be measured. */
export interface ReadyMessage {
  kind: "ready";
  /** GraphQL port (gateway only). */
  port?: number;
  /** Where the devices connect. */
  mqttUrl: string;
  /** Gateway only: the store it started (the bench, the floor and the limit use the same one). */
  mongodbUri?: string;
  /** Floor only: how the bench connects to the floor's broker to send requests and receive transitions. */
  benchCredentials?: { username?: string; password?: string };
  /** Device host only: how many of its devices came online. */
  devices?: number;
  /** OTLP sink only: where the traced gateway exports (OTEL_EXPORTER_OTLP_ENDPOINT). */
  otlpEndpoint?: string;
}

/** Request/reply over the IPC channel of a forked child. */
export class ChildChannel {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();

  constructor(readonly child: ChildProcess) {
    child.on("message", (message: ChildReply | ReadyMessage) => {
      if (!("id" in message)) return;
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.value);
      else waiter.reject(new Error(message.error));
    });
    child.once("exit", (code, signal) => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`child exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  /** Resolves with the child's ReadyMessage, or rejects if it exits first. */
  static ready(child: ChildProcess): Promise<ReadyMessage> {
    return new Promise((resolve, reject) => {
      const onMessage = (message: ReadyMessage) => {
        if (message.kind !== "ready") return;
        child.off("exit", onExit);
        resolve(message);
      };
      const onExit = (code: number | null) => reject(new Error(`child exited (${code}) before it was ready`));
      child.on("message", onMessage);
      child.once("exit", onExit);
    });
  }

  request<T>(request: ChildRequestBody): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ ...request, id });
    });
  }
}

/** The child side: answers requests with `handle`, and exits after a `stop` request. */
export function serveParent(handle: (request: ChildRequest) => Promise<unknown>, stop: () => Promise<void>): void {
  // The bench is gone (killed, crashed): never outlive it.
  process.once("disconnect", () => void stop().finally(() => process.exit(1)));
  process.on("message", (request: ChildRequest) => {
    const answer = (reply: ChildReply, then: () => void = () => undefined) => process.send!(reply, then);
    const work = request.kind === "stop" ? stop() : handle(request);
    work.then(
      // After `stop`, exit even if a library left a timer behind (and so write a --cpu-prof profile).
      (value) => answer({ id: request.id, ok: true, value: value ?? null }, request.kind === "stop" ? () => process.exit(0) : undefined),
      (error: Error) => answer({ id: request.id, ok: false, error: error.message }),
    );
  });
}

/** Full GC (the child runs with --expose-gc), then memory. */
export function memoryAfterGc(): MemorySample {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc");
  gc();
  gc();
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heapUsed };
}
