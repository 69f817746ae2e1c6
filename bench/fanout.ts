import type { Client } from "graphql-ws";
import type { GatewayApi } from "./gateway-api";

/**
 * Many graphql-ws connections, each subscribed to one device's updates. The delay it measures is from a
 * transition's `updatedAt` to its arrival at each subscriber: the gateway stamps `updatedAt` before the
 * store write, so the delay includes that write, the event bus and the WebSocket push.
 */
export const FANOUT_MEASURES = "transition → subscriber: from the transition's updatedAt (stamped before its store write) to its arrival at each subscriber";

export class Fanout {
  private readonly clients: Client[] = [];
  private readonly received = new Map<string, number>();
  private delays: number[] = [];

  constructor(
    private readonly api: GatewayApi,
    private readonly deviceId: string,
  ) {}

  async grow(total: number): Promise<void> {
    while (this.clients.length < total) {
      const batch = Math.min(100, total - this.clients.length);
      const clients = await Promise.all(Array.from({ length: batch }, () => this.api.connect()));
      for (const client of clients) {
        this.clients.push(client);
        this.api.subscribe(client, this.deviceId, (event, receivedAt) => {
          this.delays.push(receivedAt - Date.parse(event.updatedAt));
          if (event.status === "SUCCEEDED") this.received.set(event.id, (this.received.get(event.id) ?? 0) + 1);
        });
      }
    }
    // Subscribe messages are not acknowledged: a command that reaches every subscriber shows they are all registered.
    for (let i = 0; i < 20 && !(await this.deliverToAll(2_000)); i++);
  }

  /** Delay of every event received over `commands` commands, one after another. */
  async measure(commands: number): Promise<number[]> {
    this.delays = [];
    for (let i = 0; i < commands; i++) await this.deliverToAll(10_000);
    return this.delays;
  }

  private async deliverToAll(timeoutMs: number): Promise<boolean> {
    const id = await this.api.sendCommand(this.deviceId);
    const deadline = Date.now() + timeoutMs;
    while ((this.received.get(id) ?? 0) < this.clients.length) {
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return true;
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((client) => client.dispose()));
  }
}
