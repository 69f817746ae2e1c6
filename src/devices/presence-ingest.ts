import { z } from "zod";
import type { Clock } from "../clock";
import type { Logger } from "../logger";
import type { DeviceRepository } from "../store/device-repository";

const presenceSchema = z.object({ online: z.boolean() });

export type PresenceListener = (deviceId: string, event: { cameOnline: boolean; replayed: boolean }) => void;

/**
 * Keeps each device's `online` flag from its retained presence topic and last will (CONTRACT §5),
 * and tells the dispatcher when a device is there to receive commands.
 */
export class PresenceIngest {
  constructor(
    private readonly devices: DeviceRepository,
    private readonly onOnline: PresenceListener,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** `replayed`: a retained message delivered because the gateway (re)subscribed, not a new connection. */
  async handle(deviceId: string, payload: Buffer, replayed: boolean): Promise<void> {
    let online: boolean;
    try {
      online = presenceSchema.parse(JSON.parse(payload.toString("utf8"))).online;
    } catch {
      this.log.debug({ deviceId }, "malformed presence message ignored");
      return;
    }
    const change = await this.devices.setPresence(deviceId, online, this.clock.now());
    if (!change) return; // not a registered device
    if (online) this.onOnline(deviceId, { cameOnline: change.cameOnline, replayed });
  }
}
