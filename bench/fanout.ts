import type { Client } from "graphql-ws";
import type { GatewayApi } from "./gateway-api";

/**
 * Many graphql-ws connections, each subscribed to one device's updates. `commandUpdated`: the delay is
 * from a transition's `updatedAt` to its arrival at each subscriber: the gateway stamps `updatedAt`
 * before the store write, so the delay includes that write, the event bus and the WebSocket push.
 * `deviceUpdated`: from the state change (`stateUpdatedAt`, the SUCCEEDED transition's time, before its
 * store write) to the arrival of the device with that state, so it includes the command's and the
 * device's writes, the read of the device and the push.
 */
export const FANOUT_MEASURES = "transition → subscriber: from the transition's updatedAt (stamped before its store write) to its arrival at each subscriber";
export const DEVICE_FANOUT_MEASURES =
  "state change → subscriber: from the device's stateUpdatedAt (the SUCCEEDED transition's time, before the command's and the device's writes) to the arrival of the device with that state at each subscriber";

export type FanoutSubscription = "commandUpdated" | "deviceUpdated";

export class Fanout {
  private readonly clients: Client[] = [];
  private readonly unsubscribes: Array<() => void> = [];
  /** Per command (commandUpdated: its id; deviceUpdated: the setpoint it sets): subscribers that received its end. */
  private readonly received = new Map<string, number>();
  private delays: number[] = [];
  /** Each deviceUpdated command sets another setpoint, so each changes the reported state. */
  private setpoints = 0;
  private subscription: FanoutSubscription = "commandUpdated";

  constructor(
    private readonly api: GatewayApi,
    private readonly deviceId: string,
  ) {}

  /** Opens connections (subscribed to nothing) up to `total`. */
  async grow(total: number): Promise<void> {
    while (this.clients.length < total) {
      const batch = Math.min(100, total - this.clients.length);
      this.clients.push(...(await Promise.all(Array.from({ length: batch }, () => this.api.connect()))));
    }
  }

  /** Subscribes every connection to `subscription`; resolves once a command's end reached every one of them. */
  async subscribe(subscription: FanoutSubscription): Promise<void> {
    this.unsubscribe();
    this.subscription = subscription;
    for (const client of this.clients) this.unsubscribes.push(subscription === "commandUpdated" ? this.onCommand(client) : this.onDevice(client));
    // Subscribe messages are not acknowledged: a command that reaches every subscriber shows they are all registered.
    for (let i = 0; i < 20 && !(await this.deliverToAll(2_000)); i++);
  }

  /** Delay of every event received over `commands` commands, one after another. */
  async measure(commands: number): Promise<number[]> {
    this.delays = [];
    for (let i = 0; i < commands; i++) await this.deliverToAll(10_000);
    return this.delays;
  }

  unsubscribe(): void {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
  }

  private onCommand(client: Client): () => void {
    return this.api.subscribe(client, this.deviceId, (event, receivedAt) => {
      this.delays.push(receivedAt - Date.parse(event.updatedAt));
      if (event.status === "SUCCEEDED") this.count(event.id);
    });
  }

  private onDevice(client: Client): () => void {
    let last: string | null | undefined;
    return this.api.subscribeDevice(client, this.deviceId, (event, receivedAt) => {
      // Other updates (a command joining the pending ones) carry the state already seen.
      if (event.stateUpdatedAt === null || event.stateUpdatedAt === last) return;
      last = event.stateUpdatedAt;
      this.delays.push(receivedAt - Date.parse(event.stateUpdatedAt));
      this.count(String(event.reported.setpoint));
    });
  }

  private count(key: string): void {
    this.received.set(key, (this.received.get(key) ?? 0) + 1);
  }

  private async deliverToAll(timeoutMs: number): Promise<boolean> {
    let key: string;
    if (this.subscription === "commandUpdated") key = await this.api.sendCommand(this.deviceId);
    else {
      // 5.0 … 34.9 °C in steps of 0.1: never the setpoint just before.
      const celsius = 5 + (this.setpoints++ % 300) / 10;
      key = String(celsius);
      this.received.delete(key);
      await this.api.sendCommand(this.deviceId, celsius);
    }
    const deadline = Date.now() + timeoutMs;
    while ((this.received.get(key) ?? 0) < this.clients.length) {
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return true;
  }

  async close(): Promise<void> {
    this.unsubscribe();
    await Promise.all(this.clients.splice(0).map((client) => client.dispose()));
  }
}
