import type { Clock } from "../clock";
import { faultPoint } from "../common/fault-points";
import type { KeyedSerial } from "../common/keyed-serial";
import type { Logger } from "../logger";
import type { Metrics } from "../observability/metrics";
import { inSpan, SpanKind, traceparentOf, type TraceContext } from "../observability/tracing";
import type { DeviceDirectory } from "../devices/device-directory";
import type { DispatchLeases } from "./dispatch-leases";
import type { ActiveCommands } from "./active-commands";
import { isDue, type Command, type DispatchClaim } from "./command";
import { encodeCommandMessage } from "./command-message";
import type { CommandLifecycle } from "./lifecycle";
import type { Superseding } from "./superseding";

/** Publish times kept before those of commands no longer SENT or QUEUED are dropped. */
const PUBLISHED_KEPT = 1_000;

/**
 * Sends a command message to its device; resolves when the broker has acknowledged it. `onAcked` runs
 * synchronously with the acknowledgement, before the device's replies can be handled.
 */
export type CommandPublisher = (command: Command, message: string, onAcked?: () => void) => Promise<void>;

/**
 * Moves QUEUED commands to devices, in the order they fall due per device (a scheduled command waits
 * for its `notBefore` without holding back the others), one device at a time per replica and
 * one replica at a time per device (a lease in the store, held across runs and renewed when half of
 * it is used). A command is claimed before it is published and marked SENT when the broker
 * acknowledges it; a replica that dies in between leaves a claim that expires, and the command is
 * published again with the same id and attempt, which the device recognises. The queue and the
 * device's presence come from memory (ActiveCommands, DeviceDirectory), not from the store.
 */
export class Dispatcher {
  private readonly running = new Map<string, { again: boolean; redeliver: boolean }>();
  /** When each device's latest online announcement was handled. */
  private readonly announcedAt = new Map<string, number>();
  /** When this process last published each command (a redelivery skips what went to the announced connection). */
  private readonly publishedAt = new Map<string, number>();
  private prunePublishedAbove = PUBLISHED_KEPT;
  /** Devices whose lease this replica holds, and until when. */
  private readonly leasedUntil = new Map<string, number>();
  private stopped = false;

  constructor(
    private readonly active: ActiveCommands,
    private readonly devices: DeviceDirectory,
    private readonly leases: DispatchLeases,
    private readonly lifecycle: CommandLifecycle,
    private readonly superseding: Superseding,
    private readonly perDevice: KeyedSerial,
    private readonly publish: CommandPublisher,
    private readonly clock: Clock,
    private readonly owner: string,
    /** How long a claim or a device lease holds; longer than the broker's publish timeout. */
    private readonly leaseMs: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** The device announced itself online (a new connection, or the retained announcement): sends it what may be lost. */
  announced(deviceId: string): void {
    this.announcedAt.set(deviceId, this.clock.now().getTime());
    this.kick(deviceId, { redeliver: true });
  }

  /**
   * Works on the device's queue soon; calls while a run is under way make it run once more. `redeliver`:
   * first sends again the SENT commands that may not have reached the device's announced connection.
   */
  kick(deviceId: string, options: { redeliver?: boolean } = {}): void {
    if (this.stopped) return;
    const run = this.running.get(deviceId);
    if (run) {
      run.again = true;
      run.redeliver ||= options.redeliver ?? false;
      return;
    }
    const state = { again: false, redeliver: options.redeliver ?? false };
    this.running.set(deviceId, state);
    void this.loop(deviceId, state);
  }

  /**
   * A claim a new command can be stored with, so that sending it costs no claim write: when this
   * replica holds the device's lease for a while yet (a sole writer takes it here, for nothing), the
   * device is online and nothing queued and due is ahead of it. Otherwise undefined (the command is
   * claimed when its turn comes).
   */
  claimForNew(deviceId: string): DispatchClaim | undefined {
    const now = this.clock.now().getTime();
    if (this.stopped || !this.devices.isOnline(deviceId) || this.active.hasDueQueued(deviceId, this.clock.now())) return undefined;
    if ((this.leasedUntil.get(deviceId) ?? 0) - now < this.leaseMs / 2) {
      // The first command to a device since start (every child of a fleet command) would otherwise cost a claim write.
      if (!this.leases.alwaysGranted) return undefined;
      this.leasedUntil.set(deviceId, now + this.leaseMs);
    }
    return { owner: this.owner, until: new Date(now + this.leaseMs) };
  }

  /** Whether this replica holds the device's dispatch lease (it acts first on the device's expiries). */
  holdsLease(deviceId: string): boolean {
    return (this.leasedUntil.get(deviceId) ?? 0) > this.clock.now().getTime();
  }

  /** Resolves when no run is under way, and hands the leases back (for shutdown). */
  async stop(): Promise<void> {
    this.stopped = true;
    while (this.running.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    const held = [...this.leasedUntil.keys()];
    this.leasedUntil.clear();
    await Promise.allSettled(held.map((deviceId) => this.leases.release(deviceId, this.owner)));
  }

  private async loop(deviceId: string, state: { again: boolean; redeliver: boolean }): Promise<void> {
    do {
      state.again = false;
      const redeliver = state.redeliver;
      state.redeliver = false;
      try {
        await this.runOnce(deviceId, redeliver);
      } catch (error) {
        // A claimed command stays claimed until its lease ends; then it is published again.
        this.log.warn({ deviceId, err: (error as Error).message }, "dispatch failed; will try again");
      }
    } while (state.again && !this.stopped);
    this.running.delete(deviceId);
  }

  private async runOnce(deviceId: string, redeliver: boolean): Promise<void> {
    if (!this.devices.isOnline(deviceId) || !(await this.holdLease(deviceId))) return;
    if (redeliver) {
      // Sent before the device announced its connection and never acknowledged: send again, same id and
      // attempt. What this process published after the announcement went to that connection (the device
      // subscribes before it announces): sending it again would only be a copy. Without an announcement
      // seen, the connection's age is unknown: everything SENT goes again.
      const announcedAt = this.announcedAt.get(deviceId) ?? Infinity;
      const maybeLost = this.active.sent(deviceId).filter((c) => (this.publishedAt.get(c.id) ?? -Infinity) <= announcedAt);
      for (const command of maybeLost) {
        if (!this.devices.isOnline(deviceId)) return;
        await this.publishing(command);
        this.metrics.commandsPublished.inc({ kind: "redelivery" });
      }
    }
    // What fell due since the last run (a scheduled setpoint) replaces what it supersedes before anything is sent.
    await this.superseding.supersedeDue(deviceId);
    const tried = new Set<string>();
    while (!this.stopped && this.devices.isOnline(deviceId)) {
      const next = this.nextToSend(deviceId, tried);
      if (!next) return;
      tried.add(next.id);
      if (!(await this.holdLease(deviceId))) return;
      const command = await this.claim(next);
      if (!command) continue;
      faultPoint("after-claim");
      let marked: Promise<{ done: Promise<unknown> }> | undefined;
      // SENT is queued in the device's lane at the PUBACK itself, ahead of the device's replies.
      await this.publishing(command, (trace) => {
        faultPoint("after-publish");
        marked = this.perDevice.run(deviceId, async () => ({ done: this.markSent(command, trace) }));
      });
      this.metrics.commandsPublished.inc({ kind: "send" });
      await (await marked)?.done;
    }
  }

  /**
   * Publishes the command and notes when (before the broker has it, so a later announcement is later).
   * In a span of the command's trace that ends at the broker's acknowledgement; the message carries
   * that span's traceparent, so a device that echoes it puts its replies under it.
   */
  private publishing(command: Command, onAcked?: (trace: TraceContext) => void): Promise<void> {
    const attributes = { "messaging.system": "mqtt", "messaging.operation.type": "send", "command.id": command.id, "command.attempt": command.attempt, "command.device_id": command.deviceId };
    return inSpan("command.publish", { kind: SpanKind.PRODUCER, parent: command.traceparent, attributes }, (trace) => this.publishNow(command, trace, onAcked && (() => onAcked(trace))));
  }

  private publishNow(command: Command, trace: TraceContext, onAcked?: () => void): Promise<void> {
    this.publishedAt.set(command.id, this.clock.now().getTime());
    if (this.publishedAt.size > this.prunePublishedAbove) {
      for (const id of this.publishedAt.keys()) {
        const status = this.active.get(id)?.status;
        if (status !== "SENT" && status !== "QUEUED") this.publishedAt.delete(id);
      }
      this.prunePublishedAbove = 2 * this.publishedAt.size + PUBLISHED_KEPT;
    }
    return this.publish(command, encodeCommandMessage(command, traceparentOf(trace)), onAcked);
  }

  /** The first-due QUEUED command that is this replica's to send: unclaimed, due and not expired, its own, or a dead dispatcher's. */
  private nextToSend(deviceId: string, tried: Set<string>): Command | undefined {
    const now = this.clock.now();
    return this.active.queued(deviceId).find(
      (c) =>
        !tried.has(c.id) &&
        (c.claim ? c.claim.owner === this.owner || c.claim.until < now : isDue(c, now) && !(c.expiresAt && c.expiresAt <= now)),
    );
  }

  /** The command claimed by this replica (no write when it already is, for long enough), or null. */
  private async claim(command: Command): Promise<Command | null> {
    const now = this.clock.now();
    if (command.claim?.owner === this.owner && command.claim.until.getTime() - now.getTime() > this.leaseMs / 2) return command;
    const outcome = await this.lifecycle.submit(command.id, (current) => {
      const now = this.clock.now();
      if (current.status !== "QUEUED" || current.attempt !== command.attempt) return { refused: "not_queued" };
      const mine = current.claim?.owner === this.owner;
      if (current.claim && !mine && current.claim.until >= now) return { refused: "claimed" };
      if (!current.claim && !isDue(current, now)) return { refused: "not_due" };
      // Never handed to the broker for this attempt and expired: the expiry is the schedule's to record.
      if (!current.claim && current.expiresAt && current.expiresAt <= now) return { refused: "expired" };
      return { set: { claim: { owner: this.owner, until: new Date(now.getTime() + this.leaseMs) } } };
    });
    return outcome.refused === undefined ? outcome.command : null;
  }

  /** Takes or keeps the device's lease: a store write only when it is not held or half used. */
  private async holdLease(deviceId: string): Promise<boolean> {
    const now = this.clock.now();
    const until = this.leasedUntil.get(deviceId) ?? 0;
    if (until - now.getTime() > this.leaseMs / 2) return true;
    if (!(await this.leases.acquire(deviceId, this.owner, now, this.leaseMs, until > now.getTime()))) {
      this.leasedUntil.delete(deviceId);
      return false;
    }
    this.leasedUntil.set(deviceId, now.getTime() + this.leaseMs);
    return true;
  }

  /**
   * SENT waits a moment for the device's replies, which nearly always follow within milliseconds, so
   * that SENT, DELIVERED and the result cost one write. Until SENT is stored the command is QUEUED and
   * claimed: a crash then means it is published again with the same id and attempt, as after any crash
   * before the PUBACK was stored. SENT belongs to the publish span `trace`.
   */
  private markSent(command: Command, trace: TraceContext) {
    const sentAt = this.clock.now();
    const moreToSend = this.active.queued(command.deviceId).some((c) => c.id !== command.id && isDue(c, sentAt));
    return this.lifecycle.apply(
      command.id,
      "publishAcked",
      (current) => {
        // Only the attempt that was claimed (a retry in between removes the claim).
        if (!current.claim || current.attempt !== command.attempt) return null;
        return { set: { sentAt, deadline: new Date(sentAt.getTime() + current.timeoutSeconds * 1000) }, event: { at: sentAt, actor: "gateway" } };
      },
      undefined,
      { lingerMs: this.lifecycle.replyWaitMs(moreToSend), trace },
    );
  }
}
