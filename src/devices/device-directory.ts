import type { DeviceRepository } from "../store/device-repository";
import type { DeviceRegistry } from "../embedded/broker";
import type { Device } from "./device";

/**
 * Every registered device and whether it is online, in memory: loaded at start, kept current by
 * presence (every replica receives every device's presence) and by registrations on any replica (a bus
 * event). The hot path (send, dispatch, replies) asks here, not the store.
 */
export class DeviceDirectory implements DeviceRegistry {
  private readonly devices = new Map<string, Device>();

  constructor(private readonly repository: DeviceRepository) {}

  async load(): Promise<void> {
    for (const device of await this.repository.all()) this.devices.set(device.id, device);
  }

  get(id: string): Device | undefined {
    return this.devices.get(id);
  }

  /** The device from memory, or from the store when memory has not heard of it yet (registered a moment ago elsewhere). */
  async find(id: string): Promise<Device | null> {
    const known = this.devices.get(id);
    if (known) return known;
    const stored = await this.repository.findById(id);
    if (stored) this.registered(stored);
    return stored;
  }

  /** The embedded broker's CONNECT check: no store round trip per connection attempt. */
  isRegisteredDevice(id: string): boolean {
    return this.devices.has(id);
  }

  /** Every registered device this replica knows of (fleet targeting, once per fleet command). */
  all(): IterableIterator<Device> {
    return this.devices.values();
  }

  isOnline(id: string): boolean {
    return this.devices.get(id)?.online === true;
  }

  registered(device: Device): void {
    if (!this.devices.has(device.id)) this.devices.set(device.id, device);
  }

  /** Keeps the copy's reported state current after this replica wrote it. */
  reportedChanged(id: string, reported: Record<string, unknown>, at: Date): void {
    const device = this.devices.get(id);
    if (device) this.devices.set(id, { ...device, reported, stateUpdatedAt: at });
  }

  /** `false` for an id that is not registered. */
  presence(id: string, online: boolean, at: Date): boolean {
    const device = this.devices.get(id);
    if (!device) return false;
    this.devices.set(id, { ...device, online, lastSeenAt: at });
    return true;
  }
}
