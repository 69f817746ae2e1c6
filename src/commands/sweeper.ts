import type { AlertService } from "../alerts/alert-service";
import type { Clock } from "../clock";
import { faultPoint } from "../common/fault-points";
import type { KeyedSerial } from "../common/keyed-serial";
import type { Logger } from "../logger";
import type { CommandRepository } from "../store/command-repository";
import type { DeviceRepository } from "../store/device-repository";
import type { Command } from "./command";
import type { Dispatcher } from "./dispatcher";
import type { CommandLifecycle } from "./lifecycle";

const BATCH = 200;
const SAFETY_NET_INTERVAL_MS = 2_000;

/**
 * The periodic part of the lifecycle: deadlines → TIMED_OUT, expiries → EXPIRED, and the safety net
 * for whatever a lost wake-up, a crashed replica or a restart left undone (stalled queues, alerts
 * decided but not written). Every step is a conditional update, so any number of replicas may sweep
 * at once and each transition still happens once.
 */
export class Sweeper {
  private timer?: NodeJS.Timeout;
  private sweeping?: Promise<void>;
  private round = 0;
  private readonly safetyNetEvery: number;

  constructor(
    private readonly commands: CommandRepository,
    private readonly devices: DeviceRepository,
    private readonly lifecycle: CommandLifecycle,
    private readonly dispatcher: Dispatcher,
    private readonly alerts: AlertService,
    private readonly perDevice: KeyedSerial,
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    this.safetyNetEvery = Math.max(1, Math.round(SAFETY_NET_INTERVAL_MS / intervalMs));
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.sweeping) return; // a slow sweep is not stacked on itself
      this.sweeping = this.sweep()
        .catch((error) => this.log.warn({ err: (error as Error).message }, "sweep failed; next round will retry"))
        .finally(() => (this.sweeping = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.sweeping;
  }

  async sweep(): Promise<void> {
    await this.timeOutOverdue();
    await this.expireStale();
    // The safety net repairs what is rare (a crash, a lost wake-up): every couple of seconds is enough,
    // and it spares the store two scans per round.
    if (this.round++ % this.safetyNetEvery === 0) {
      await this.raisePendingAlerts();
      await this.kickStalledQueues();
    }
  }

  private async timeOutOverdue(): Promise<void> {
    for (const command of await this.commands.findOverdue(this.clock.now(), BATCH)) {
      if (await this.transition(command, "timeOut", `no final reply within ${command.timeoutSeconds} s`, "TIMED_OUT")) faultPoint("after-timeout");
    }
  }

  private async expireStale(): Promise<void> {
    for (const command of await this.commands.findExpired(this.clock.now(), BATCH)) {
      await this.transition(command, "expire", "not sent before expiresAt", "EXPIRED", { claim: { $exists: false } });
    }
  }

  private transition(command: Command, transition: "timeOut" | "expire", detail: string, kind: "TIMED_OUT" | "EXPIRED", where = {}) {
    return this.perDevice.run(command.deviceId, () => {
      const now = this.clock.now();
      return this.lifecycle.apply(command.id, transition, {
        set: { pendingAlert: { kind, level: command.escalation?.level ?? 0, attempt: command.attempt } },
        event: { at: now, actor: "gateway", detail },
        // The attempt that was found overdue, not one retried meanwhile.
        where: { ...where, attempt: command.attempt },
      });
    });
  }

  private async raisePendingAlerts(): Promise<void> {
    for (const command of await this.commands.findWithPendingAlert(BATCH)) await this.alerts.raisePending(command);
  }

  /** Online devices with queued commands nobody is sending. */
  private async kickStalledQueues(): Promise<void> {
    const deviceIds = await this.commands.deviceIdsWithPendingDispatch(this.clock.now());
    if (deviceIds.length === 0) return;
    for (const deviceId of await this.devices.onlineAmong(deviceIds)) this.dispatcher.kick(deviceId);
  }
}
