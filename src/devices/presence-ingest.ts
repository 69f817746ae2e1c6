import { z } from "zod";
import type { Clock } from "../clock";
import type { KeyedSerial } from "../common/keyed-serial";
import type { Logger } from "../logger";
import type { DeviceRepository } from "../store/device-repository";
import type { DeviceRef } from "./device";
import type { DeviceDirectory } from "./device-directory";

const presenceSchema = z.object({ online: z.boolean() });

export type PresenceListener = (deviceId: string) => void;
export type PresenceChangeListener = (device: DeviceRef) => void;

/**
 * Keeps each device's `online` flag from its retained presence topic and last will (CONTRACT §5),
 * and tells the dispatcher when a device is there to receive commands.
 */
export class PresenceIngest {
  constructor(
    private readonly devices: DeviceRepository,
    private readonly directory: DeviceDirectory,
    /** Presence changes of one device are stored in the order they arrived (a will, then a reconnect). */
    private readonly perDevice: KeyedSerial,
    private readonly onOnline: PresenceListener,
    /** The device went online or offline (not a repeated announcement). */
    private readonly onChanged: PresenceChangeListener,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  async handle(deviceId: string, payload: Buffer): Promise<void> {
    let online: boolean;
    try {
      online = presenceSchema.parse(JSON.parse(payload.toString("utf8"))).online;
    } catch {
      this.log.debug({ deviceId }, "malformed presence message ignored");
      return;
    }
    const at = this.clock.now();
    // Memory first: the dispatcher may act on it at once; the store keeps it for the API and restarts.
    if (!this.directory.presence(deviceId, online, at) && !(await this.directory.find(deviceId))) return;
    this.directory.presence(deviceId, online, at);
    const before = await this.perDevice.run(deviceId, () => this.devices.setPresence(deviceId, online, at));
    if (!before) return;
    if (before.online !== online) this.onChanged(before);
    if (online) this.onOnline(deviceId);
  }
}
