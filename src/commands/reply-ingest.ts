import type { Clock } from "../clock";
import { faultPoint } from "../common/fault-points";
import type { KeyedSerial } from "../common/keyed-serial";
import type { Logger } from "../logger";
import type { Metrics } from "../observability/metrics";
import { annotate, inSpan, inTrace, SpanKind, tracingEnabled, type TraceContext } from "../observability/tracing";
import type { DeviceDirectory } from "../devices/device-directory";
import type { CommandRepository } from "../store/command-repository";
import { isStoreUnavailableError } from "../store/database";
import type { ActiveCommands } from "./active-commands";
import type { Command } from "./command";
import { deviceReplySchema, MAX_REPLY_BYTES, type DeviceReply } from "./command-message";
import type { CommandLifecycle, Mutation, Outcome } from "./lifecycle";
import { canTransition, REPLY_TRANSITIONS, targetOf } from "./state-machine";

export type ReplyOutcome =
  | "applied"
  | "oversized"
  | "malformed"
  | "unknown_command"
  | "wrong_device"
  | "stale_attempt"
  | "not_allowed_in_state"
  /** The device already had MAX_PENDING_PER_DEVICE replies waiting: a flood only delays (and costs) its sender. */
  | "overloaded";

/** Replies of one device being applied at once; more are dropped (a device has only a few commands in flight). */
export const MAX_PENDING_PER_DEVICE = 64;

/**
 * Applies device replies (CONTRACT §5) to the state machine. A reply changes a command only if it
 * comes from the command's own device, for its current attempt, in a status that allows it;
 * everything else changes nothing and is counted by reason. A reply about an active command is
 * judged from memory; only one about a command memory does not hold (e.g. late, after TIMED_OUT)
 * reads the store. A reply whose apply meets a store outage is tried again until the store is back:
 * the broker gets its acknowledgement only once the reply is applied.
 */
export class ReplyIngest {
  private stopped = false;
  private readonly pending = new Map<string, number>();

  constructor(
    private readonly commands: CommandRepository,
    private readonly active: ActiveCommands,
    private readonly devices: DeviceDirectory,
    private readonly lifecycle: CommandLifecycle,
    private readonly perDevice: KeyedSerial,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly retry: { firstMs: number; maxMs: number } = { firstMs: 200, maxMs: 5_000 },
  ) {}

  /** Stops retrying (shutdown): a reply not applied yet stays unacknowledged, and the broker delivers it again. */
  stop(): void {
    this.stopped = true;
  }

  async handle(deviceId: string, payload: Buffer): Promise<ReplyOutcome> {
    const reply = parseReply(payload);
    if (typeof reply === "string") return this.counted(deviceId, reply);
    // Off: no span, and no lookup of the command's stored traceparent.
    if (!tracingEnabled()) return this.counted(deviceId, await this.applyBounded(deviceId, reply, undefined));
    return this.traced(deviceId, reply);
  }

  private counted(deviceId: string, outcome: ReplyOutcome): ReplyOutcome {
    if (outcome !== "applied") {
      this.metrics.repliesRejected.inc({ reason: outcome });
      this.log.debug({ deviceId, outcome }, "reply rejected");
    }
    return outcome;
  }

  /**
   * Applied in a span of the command's trace: under the publish span when the device echoed the
   * traceparent, else under the request that created the command (its stored traceparent, read from
   * the store when memory does not hold the command: a reply after a restart or on another replica).
   */
  private async traced(deviceId: string, reply: DeviceReply): Promise<ReplyOutcome> {
    const stored = (this.active.get(reply.id) ?? (await this.commands.findById(reply.id).catch(() => null)))?.traceparent;
    const attributes = { "messaging.system": "mqtt", "messaging.operation.type": "process", "command.id": reply.id, "command.device_id": deviceId, "command.reply.traceparent_echoed": reply.traceparent !== undefined };
    return inSpan(`command.reply ${reply.status}`, { kind: SpanKind.CONSUMER, parent: [reply.traceparent, stored], attributes }, async (trace) => {
      const outcome = await this.applyBounded(deviceId, reply, trace);
      annotate(trace, { "command.reply.outcome": outcome });
      return inTrace(trace, () => this.counted(deviceId, outcome));
    });
  }

  /** `trace`: the reply's span, where its write and events belong. */
  private async applyBounded(deviceId: string, reply: DeviceReply, trace: TraceContext): Promise<ReplyOutcome> {
    const pending = this.pending.get(deviceId) ?? 0;
    if (pending >= MAX_PENDING_PER_DEVICE) return "overloaded";
    this.pending.set(deviceId, pending + 1);
    try {
      return await this.applyUntilStored(deviceId, reply, trace);
    } finally {
      const left = this.pending.get(deviceId)! - 1;
      if (left === 0) this.pending.delete(deviceId);
      else this.pending.set(deviceId, left);
    }
  }

  private async applyUntilStored(deviceId: string, reply: DeviceReply, trace: TraceContext): Promise<ReplyOutcome> {
    for (let delay = this.retry.firstMs; ; delay = Math.min(delay * 2, this.retry.maxMs)) {
      try {
        return await this.apply(deviceId, reply, trace);
      } catch (error) {
        if (!isStoreUnavailableError(error) || this.stopped) throw error;
        this.metrics.replyRetries.inc();
        inTrace(trace, () => this.log.warn({ deviceId, commandId: reply.id, retryInMs: delay }, "store unavailable; the reply will be applied when it is back"));
      }
      await new Promise((resolve) => setTimeout(resolve, delay).unref());
      if (this.stopped) throw new Error("stopping: reply left to the broker to deliver again");
    }
  }

  private async apply(deviceId: string, reply: DeviceReply, trace: TraceContext): Promise<ReplyOutcome> {
    if (!this.devices.get(deviceId)) return "unknown_command";
    faultPoint("after-reply");
    // Queued in the device's lane in arrival order; the write itself is awaited outside it, so the
    // device's next reply can join this one's write (one store round trip for both).
    const queued = await this.perDevice.run(deviceId, async (): Promise<{ outcome: ReplyOutcome } | { pending: Promise<Outcome> }> => {
      let known = this.active.get(reply.id);
      const early = known && judge(known, deviceId, reply);
      if (early && isCertain(early, known!, reply)) return { outcome: early };
      // Not in memory, or memory may be behind the store (a claim or retry made elsewhere): read it.
      if (!known || early) known = (await this.readIntoMemory(reply.id)) ?? undefined;
      if (!known) return { outcome: "unknown_command" };
      const decide = (current: Command) => refusal(judge(current, deviceId, reply)) ?? this.changeFor(reply, current, deviceId);
      // A DELIVERED that finds no SENT waiting (written already, or its PUBACK not yet seen) waits for the final reply itself.
      const options = reply.status === "DELIVERED" ? { reply: "DELIVERED" as const, lingerMs: this.lifecycle.replyWaitMs(), trace } : { reply: "final" as const, trace };
      return { pending: this.lifecycle.submit(reply.id, decide, known, options) };
    });
    if ("outcome" in queued) return queued.outcome;
    const result = await queued.pending;
    return result.refused === undefined ? "applied" : (result.refused as ReplyOutcome);
  }

  private async readIntoMemory(id: string): Promise<Command | null> {
    const stored = await this.commands.findById(id);
    if (stored) this.active.observe(stored);
    return stored;
  }

  private changeFor(reply: DeviceReply, command: Command, deviceId: string): Mutation {
    const now = this.clock.now();
    const set: NonNullable<Mutation["set"]> = {};
    const steps: NonNullable<Mutation["steps"]> = [];
    // Sent, but SENT was never recorded (the gateway died between the broker's PUBACK and storing it).
    if (command.status === "QUEUED") {
      Object.assign(set, { sentAt: now, deadline: new Date(now.getTime() + command.timeoutSeconds * 1000) });
      steps.push({ change: "publishAcked", event: { status: "SENT", at: now, actor: "gateway", detail: "acknowledged by the device" } });
    }
    if (reply.status === "DELIVERED") set.deliveredAt = now;
    else {
      set.completedAt = now;
      if (!command.deliveredAt) set.deliveredAt = now;
      // A final reply proves delivery. Its DELIVERED may still be on its way, or already refused: through a
      // shared subscription a device's replies reach different replicas, and the final one may be stored first.
      if (command.status === "QUEUED" || command.status === "SENT") {
        steps.push({ change: "deviceDelivered", event: { status: "DELIVERED", at: now, actor: `device:${deviceId}`, detail: "implied by the final reply" } });
      }
      if (reply.status === "SUCCEEDED") set.result = reply.result ?? {};
      else {
        set.error = reply.error;
        set.pendingAlert = { kind: "FAILED", level: command.escalation?.level ?? 0, attempt: command.attempt };
      }
    }
    const transition = REPLY_TRANSITIONS[reply.status];
    const event = { status: targetOf(transition), at: now, actor: `device:${deviceId}`, ...(command.status === "TIMED_OUT" ? { detail: "late reply after timeout" } : {}) };
    steps.push({ change: transition, event });
    return { set, steps };
  }
}

/** Why the reply cannot apply to the command as it stands, or undefined when it can. */
function judge(command: Command, deviceId: string, reply: DeviceReply): ReplyOutcome | undefined {
  if (command.deviceId !== deviceId) return "wrong_device";
  if (reply.attempt !== undefined && reply.attempt !== command.attempt) return "stale_attempt";
  if (!canTransition(command.status, REPLY_TRANSITIONS[reply.status])) return "not_allowed_in_state";
  // From QUEUED only once this attempt was handed to the broker.
  if (command.status === "QUEUED" && !command.claim) return "not_allowed_in_state";
  return undefined;
}

const refusal = (outcome: ReplyOutcome | undefined) => (outcome === undefined ? undefined : { refused: outcome });

/**
 * Whether a refusal judged from memory holds whatever happened since: memory may be behind the store,
 * never ahead, and only a claim (not announced) or a newer attempt can make a refused reply acceptable.
 */
function isCertain(outcome: ReplyOutcome, known: Command, reply: DeviceReply): boolean {
  if (outcome === "stale_attempt") return reply.attempt! < known.attempt;
  if (outcome === "not_allowed_in_state") return !(known.status === "QUEUED" && !known.claim);
  return true;
}

function parseReply(payload: Buffer): DeviceReply | "oversized" | "malformed" {
  if (payload.length > MAX_REPLY_BYTES) return "oversized";
  try {
    const parsed = deviceReplySchema.safeParse(JSON.parse(payload.toString("utf8")));
    return parsed.success ? parsed.data : "malformed";
  } catch {
    return "malformed";
  }
}
