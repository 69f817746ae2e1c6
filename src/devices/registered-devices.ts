import type { DeviceRegistry } from "../embedded/broker";

/**
 * The ids of registered devices, in memory, for the embedded broker's CONNECT check (a store round trip
 * per CONNECT would let anyone load the store). Loaded once at start, added to by every registration in
 * this process; the embedded broker is per process, so what this process knows is what its broker needs.
 */
export class RegisteredDevices implements DeviceRegistry {
  private readonly ids: Set<string>;

  constructor(ids: Iterable<string>) {
    this.ids = new Set(ids);
  }

  isRegisteredDevice(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    this.ids.add(id);
  }
}
