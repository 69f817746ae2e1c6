import type { Clock } from "../clock";
import { faultPoint } from "../common/fault-points";
import type { KeyedSerial } from "../common/keyed-serial";
import type { Logger } from "../logger";
import type { Metrics } from "../observability/metrics";
import type { CommandRepository } from "../store/command-repository";
import type { DeviceRepository } from "../store/device-repository";
import type { DispatchLeaseRepository } from "../store/dispatch-lease-repository";
import type { Command } from "./command";
import { encodeCommandMessage } from "./command-message";
import type { CommandLifecycle } from "./lifecycle";

/**
 * Sends a command message to its device; resolves when the broker has acknowledged it. `onAcked` runs
 * synchronously with the acknowledgement, before the device's replies can be handled.
 */
export type CommandPublisher = (command: Command, message: string, onAcked?: () => void) => Promise<void>;

/**
 * Moves QUEUED commands to devices, oldest first per device, one device at a time per replica and
 * one replica at a time per device (a lease in the store). A command is claimed before it is
 * published and marked SENT when the broker acknowledges it; a replica that dies in between leaves a
 * claim that expires, and the command is published again with the same id and attempt, which the
 * device recognises.
 */
export class Dispatcher {
  private readonly running = new Map<string, { again: boolean; redeliver: boolean }>();
  private stopped = false;

  constructor(
    private readonly commands: CommandRepository,
    private readonly devices: DeviceRepository,
    private readonly leases: DispatchLeaseRepository,
    private readonly lifecycle: CommandLifecycle,
    private readonly perDevice: KeyedSerial,
    private readonly publish: CommandPublisher,
    private readonly clock: Clock,
    private readonly owner: string,
    /** How long a claim or a device lease holds; longer than the broker's publish timeout. */
    private readonly leaseMs: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** Works on the device's queue soon; calls while a run is under way make it run once more. */
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

  /** Resolves when no run is under way (for shutdown). */
  async stop(): Promise<void> {
    this.stopped = true;
    while (this.running.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
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
    let leaseUntil = this.clock.now().getTime() + this.leaseMs;
    if (!(await this.leases.acquire(deviceId, this.owner, this.clock.now(), this.leaseMs))) return;
    try {
      if (redeliver) {
        // Sent before the device went away and never acknowledged: send again, same id and attempt.
        for (const command of await this.commands.findUndelivered(deviceId)) {
          if (!(await this.isOnline(deviceId))) return;
          await this.publish(command, encodeCommandMessage(command));
          this.metrics.commandsPublished.inc({ kind: "redelivery" });
        }
      }
      while (!this.stopped && (await this.isOnline(deviceId))) {
        const now = this.clock.now();
        const command = await this.perDevice.run(deviceId, () => this.commands.claimNextForDevice(deviceId, this.owner, now, this.leaseMs));
        if (!command) return;
        // Renewed only once half of it is used up: a store write fewer per command on a busy device.
        if (leaseUntil - now.getTime() < this.leaseMs / 2) {
          await this.leases.acquire(deviceId, this.owner, now, this.leaseMs);
          leaseUntil = now.getTime() + this.leaseMs;
        }
        faultPoint("after-claim");
        let marked: Promise<unknown> | undefined;
        // SENT is queued in the device's lane at the PUBACK itself, ahead of the device's replies.
        await this.publish(command, encodeCommandMessage(command), () => {
          faultPoint("after-publish");
          marked = this.perDevice.run(deviceId, () => this.markSent(command));
        });
        this.metrics.commandsPublished.inc({ kind: "send" });
        await marked;
      }
    } finally {
      await this.leases.release(deviceId, this.owner);
    }
  }

  private markSent(command: Command) {
    const sentAt = this.clock.now();
    return this.lifecycle.apply(command.id, "publishAcked", {
      set: { sentAt, deadline: new Date(sentAt.getTime() + command.timeoutSeconds * 1000) },
      event: { at: sentAt, actor: "gateway" },
      // Only the attempt that was claimed (a retry in between removes the claim).
      where: { claim: { $exists: true }, attempt: command.attempt },
    });
  }

  private async isOnline(deviceId: string): Promise<boolean> {
    return (await this.devices.findById(deviceId))?.online === true;
  }
}
