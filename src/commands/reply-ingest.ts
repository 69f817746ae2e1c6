import type { Clock } from "../clock";
import { faultPoint } from "../common/fault-points";
import type { KeyedSerial } from "../common/keyed-serial";
import type { Logger } from "../logger";
import type { Metrics } from "../observability/metrics";
import type { CommandRepository, TransitionChange } from "../store/command-repository";
import type { Command, CommandEvent } from "./command";
import { deviceReplySchema, MAX_REPLY_BYTES, type DeviceReply } from "./command-message";
import type { CommandLifecycle } from "./lifecycle";
import { canTransition, REPLY_TRANSITIONS } from "./state-machine";

export type ReplyOutcome =
  | "applied"
  | "oversized"
  | "malformed"
  | "unknown_command"
  | "wrong_device"
  | "stale_attempt"
  | "not_allowed_in_state";

/**
 * Applies device replies (CONTRACT §5) to the state machine. A reply changes a command only if it
 * comes from the command's own device, for its current attempt, in a status that allows it;
 * everything else changes nothing and is counted by reason.
 */
export class ReplyIngest {
  constructor(
    private readonly commands: CommandRepository,
    private readonly lifecycle: CommandLifecycle,
    private readonly perDevice: KeyedSerial,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  async handle(deviceId: string, payload: Buffer): Promise<ReplyOutcome> {
    const outcome = await this.perDevice.run(deviceId, () => this.apply(deviceId, payload));
    if (outcome !== "applied") {
      this.metrics.repliesRejected.inc({ reason: outcome });
      this.log.debug({ deviceId, outcome }, "reply rejected");
    }
    return outcome;
  }

  private async apply(deviceId: string, payload: Buffer): Promise<ReplyOutcome> {
    if (payload.length > MAX_REPLY_BYTES) return "oversized";
    let reply: DeviceReply;
    try {
      const parsed = deviceReplySchema.safeParse(JSON.parse(payload.toString("utf8")));
      if (!parsed.success) return "malformed";
      reply = parsed.data;
    } catch {
      return "malformed";
    }
    // A concurrent transition (e.g. the broker's PUBACK) can win the race: look again, a few times.
    faultPoint("after-reply");
    for (let round = 0; round < 3; round++) {
      const command = await this.commands.findById(reply.id);
      if (!command) return "unknown_command";
      if (command.deviceId !== deviceId) return "wrong_device";
      if (reply.attempt !== undefined && reply.attempt !== command.attempt) return "stale_attempt";
      const transition = REPLY_TRANSITIONS[reply.status];
      if (!canTransition(command.status, transition)) return "not_allowed_in_state";
      if (command.status === "QUEUED" && !command.claim) return "not_allowed_in_state";
      if (await this.lifecycle.apply(command.id, transition, this.changeFor(reply, command, deviceId))) return "applied";
    }
    return "not_allowed_in_state";
  }

  private changeFor(reply: DeviceReply, command: Command, deviceId: string): TransitionChange {
    const now = this.clock.now();
    const set: NonNullable<TransitionChange["set"]> = {};
    const precededBy: CommandEvent[] = [];
    // Sent, but SENT was never recorded (the gateway died between the broker's PUBACK and storing it).
    if (command.status === "QUEUED") {
      Object.assign(set, { sentAt: now, deadline: new Date(now.getTime() + command.timeoutSeconds * 1000) });
      precededBy.push({ status: "SENT", at: now, actor: "gateway", detail: "acknowledged by the device" });
    }
    if (reply.status === "DELIVERED") set.deliveredAt = now;
    else {
      set.completedAt = now;
      if (!command.deliveredAt) set.deliveredAt = now;
      if (reply.status === "SUCCEEDED") set.result = reply.result ?? {};
      else {
        set.error = reply.error;
        set.pendingAlert = { kind: "FAILED", level: command.escalation?.level ?? 0, attempt: command.attempt };
      }
    }
    return {
      set,
      precededBy,
      event: { at: now, actor: `device:${deviceId}`, ...(command.status === "TIMED_OUT" ? { detail: "late reply after timeout" } : {}) },
      // Same device and attempt as read above; from QUEUED only once this attempt was handed to the broker.
      where: { deviceId, attempt: command.attempt, $or: [{ status: { $ne: "QUEUED" } }, { claim: { $exists: true } }] },
    };
  }
}
