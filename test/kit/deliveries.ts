import type { DeviceClient } from "../../src/device-sdk";

export interface Delivery {
  deviceId: string;
  id: string;
  attempt: number;
  /** Which connection of the device it arrived on: bumped whenever the device goes offline or online. */
  connection: number;
}

/**
 * Every command message the gateway got to a device, as the device received it (before the device's
 * own deduplication by id), so a test checks the gateway's obligations rather than the SDK's: the
 * same attempt on a redelivery, a higher attempt only after a retry, no extra copies.
 */
export class DeliveryLog {
  readonly all: Delivery[] = [];
  private readonly connections = new Map<string, number>();
  private readonly retries = new Map<string, number>();

  watch(device: DeviceClient): this {
    const bump = () => this.connections.set(device.deviceId, (this.connections.get(device.deviceId) ?? 0) + 1);
    device.on("online", bump);
    device.on("offline", bump);
    device.on("command", (command) =>
      this.all.push({ deviceId: device.deviceId, id: command.id, attempt: command.attempt, connection: this.connections.get(device.deviceId) ?? 0 }),
    );
    return this;
  }

  /** Call when `retryCommand(id)` succeeded: from now on one attempt more is allowed. */
  retried(id: string): void {
    this.retries.set(id, (this.retries.get(id) ?? 0) + 1);
  }

  of(id: string): Delivery[] {
    return this.all.filter((d) => d.id === id);
  }

  /** Deliveries that carry an attempt no retry made (a retry is the only thing that raises it). */
  unexplainedAttempts(): Delivery[] {
    return this.all.filter((d) => d.attempt > 1 + (this.retries.get(d.id) ?? 0));
  }

  /** (id, attempt) pairs delivered more than `perConnection` times on one connection of the device. */
  repeatedWithin(perConnection: number): Array<{ key: string; count: number }> {
    const counts = new Map<string, number>();
    for (const d of this.all) {
      const key = `${d.deviceId} ${d.id} attempt ${d.attempt} connection ${d.connection}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return [...counts].filter(([, count]) => count > perConnection).map(([key, count]) => ({ key, count }));
  }
}
