import type { AlertService } from "../alerts/alert-service";
import type { Clock } from "../clock";
import { faultPoint } from "../common/fault-points";
import { TimerQueue } from "../common/timer-queue";
import type { DeviceDirectory } from "../devices/device-directory";
import type { Logger } from "../logger";
import { inSpan } from "../observability/tracing";
import type { CommandRepository } from "../store/command-repository";
import type { CommandIdQueries } from "../store/store-ports";
import { ACTIVE_STATUSES, type ActiveCommands } from "./active-commands";
import type { Command } from "./command";
import type { Dispatcher } from "./dispatcher";
import type { CommandLifecycle } from "./lifecycle";

/** Commands read back into memory at start; more than any gateway keeps unsettled. */
const REBUILD_LIMIT = 1_000_000;
const READ_CONCURRENCY = 8;
/** The safety net's bound per round. */
const SAFETY_NET_BATCH = 1_000;
const SAFETY_NET_INTERVAL_MS = 60_000;
const RETRY_MS = 1_000;

export interface SweeperOptions {
  /** This replica's id: it acts at the deadline of what it dispatched, the others after `graceMs`. */
  owner: string;
  graceMs: number;
  /** How long a dispatch claim holds: a queue whose head has not moved for that long is kicked. */
  leaseMs: number;
  /**
   * Look in the store once a minute for what another writer did that the bus did not tell (off when
   * this process is the store's only writer: the embedded store).
   */
  safetyNet: boolean;
}

type Due = { id: string; kind: "deadline" | "expiry" | "notBefore" };

/**
 * The timed part of the lifecycle: deadlines → TIMED_OUT, expiries → EXPIRED, a scheduled command's
 * `notBefore` → its device's dispatch woken, from an in-memory schedule of every active command (one
 * timer), so nothing polls the store. Every replica knows every
 * deadline; the one that dispatched the command acts at the deadline, the others after a grace period,
 * each by compare-and-set, so one of them records it. At start it rebuilds the active commands from
 * the store and writes the alerts a crash left decided but unwritten.
 */
export class Sweeper {
  private readonly schedule: TimerQueue<Due>;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly working = new Set<Promise<unknown>>();
  private heads = new Map<string, string>();

  constructor(
    private readonly commands: CommandRepository,
    private readonly ids: Required<CommandIdQueries>,
    private readonly active: ActiveCommands,
    private readonly devices: DeviceDirectory,
    private readonly lifecycle: CommandLifecycle,
    private readonly dispatcher: Dispatcher,
    private readonly alerts: AlertService,
    private readonly clock: Clock,
    private readonly options: SweeperOptions,
    private readonly log: Logger,
  ) {
    this.schedule = new TimerQueue(
      (due) =>
        this.track(
          this.onDue(due).catch((error) => {
            // Not recorded (the store was away): try again shortly.
            this.schedule.add(this.clock.now().getTime() + RETRY_MS, due);
            throw error;
          }),
        ),
      () => this.clock.now().getTime(),
    );
    active.onActive((command) => this.plan(command));
  }

  /**
   * Rebuilds memory from the store, then keeps the schedule and the safety nets running. Dispatch starts
   * with each device's retained presence, which the gateway receives when it subscribes: kicked before
   * that, a command published in between would be sent again by the announcement's redelivery.
   */
  async start(): Promise<void> {
    await this.readIntoMemory(await this.ids.idsWithStatus(ACTIVE_STATUSES, REBUILD_LIMIT));
    await this.raisePendingAlerts();
    this.every(this.options.leaseMs, () => this.kickStalledQueues());
    if (this.options.safetyNet) this.every(SAFETY_NET_INTERVAL_MS, () => this.track(this.safetyNet()));
  }

  async stop(): Promise<void> {
    this.schedule.stop();
    for (const timer of this.timers) clearInterval(timer);
    await Promise.allSettled([...this.working]);
  }

  private plan(command: Command): void {
    const mine = command.claim?.owner === this.options.owner;
    if ((command.status === "SENT" || command.status === "DELIVERED") && command.deadline) {
      this.schedule.add(command.deadline.getTime() + (mine ? 0 : this.options.graceMs), { id: command.id, kind: "deadline" });
    } else if (command.status === "QUEUED" && !command.claim && command.expiresAt) {
      const first = this.dispatcher.holdsLease(command.deviceId);
      this.schedule.add(command.expiresAt.getTime() + (first ? 0 : this.options.graceMs), { id: command.id, kind: "expiry" });
    }
    // Every replica wakes its dispatcher: the one that holds or takes the device's lease sends it.
    if (command.status === "QUEUED" && !command.claim && command.notBefore && command.notBefore > this.clock.now()) {
      this.schedule.add(command.notBefore.getTime(), { id: command.id, kind: "notBefore" });
    }
  }

  private async onDue({ id, kind }: Due): Promise<void> {
    const command = this.active.get(id);
    if (!command) return;
    const now = this.clock.now();
    if (kind === "notBefore") {
      if (command.status === "QUEUED" && this.devices.isOnline(command.deviceId)) this.dispatcher.kick(command.deviceId);
    } else if (kind === "deadline" && isOverdue(command, now)) {
      if (await this.endWithAlert(command, "timeOut")) faultPoint("after-timeout");
    } else if (kind === "expiry" && isExpired(command, now)) {
      await this.endWithAlert(command, "expire");
    }
  }

  /**
   * Times out or expires the attempt that was found due, not one retried meanwhile, and marks the
   * alert it raises; in a span of the command's trace, where its write, event and alert go too.
   */
  private endWithAlert(command: Command, transition: keyof typeof ENDINGS) {
    const span = {
      parent: command.traceparent,
      attributes: { "command.id": command.id, "command.device_id": command.deviceId, "command.attempt": command.attempt },
    };
    const { spanName, alert, stillDue, detail } = ENDINGS[transition];
    return inSpan(spanName, span, (trace) =>
      this.lifecycle.apply(
        command.id,
        transition,
        (current) => {
          if (current.attempt !== command.attempt || !stillDue(current, this.clock.now())) return null;
          return {
            set: { pendingAlert: { kind: alert, level: current.escalation?.level ?? 0, attempt: current.attempt } },
            event: { at: this.clock.now(), actor: "gateway", detail: detail(current) },
          };
        },
        undefined,
        { trace },
      ),
    );
  }

  /** Works on every online device's queue (the broker connection is back: what failed to publish meanwhile). */
  kickQueuedDevices(): void {
    for (const deviceId of [...this.active.devicesWithQueued()]) if (this.devices.isOnline(deviceId)) this.dispatcher.kick(deviceId);
  }

  /** Online devices whose queue has not moved for a lease period: a lost wake-up, or a dead replica's lease. */
  private kickStalledQueues(): void {
    const heads = new Map<string, string>();
    for (const deviceId of this.active.devicesWithQueued()) {
      const head = this.active.queued(deviceId)[0]!.id;
      heads.set(deviceId, head);
      if (this.heads.get(deviceId) === head && this.devices.isOnline(deviceId)) this.dispatcher.kick(deviceId);
    }
    this.heads = heads;
  }

  /** What the bus may not have told: commands another writer created or changed, alerts a crash left unwritten. */
  private async safetyNet(): Promise<void> {
    const started = Date.now();
    const ids = await this.ids.idsWithStatus(ACTIVE_STATUSES, SAFETY_NET_BATCH);
    const unknown = ids.filter((id) => !this.active.get(id));
    await this.readIntoMemory(unknown);
    await this.raisePendingAlerts();
    for (const deviceId of new Set(unknown.map((id) => this.active.get(id)?.deviceId))) if (deviceId) this.dispatcher.kick(deviceId);
    this.log.debug({ ms: Date.now() - started, active: ids.length, learned: unknown.length }, "safety net done");
  }

  private async raisePendingAlerts(): Promise<void> {
    for (const id of await this.ids.idsWithPendingAlert(SAFETY_NET_BATCH)) {
      const command = await this.commands.findById(id);
      if (command) await this.alerts.raisePending(command);
    }
  }

  private async readIntoMemory(ids: string[]): Promise<void> {
    const queue = [...ids];
    const reader = async () => {
      for (let id = queue.pop(); id !== undefined; id = queue.pop()) {
        const command = await this.commands.findById(id);
        if (command) this.active.observe(command);
      }
    };
    await Promise.all(Array.from({ length: READ_CONCURRENCY }, reader));
  }

  private every(ms: number, task: () => void): void {
    const timer = setInterval(task, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private track(work: Promise<unknown>): void {
    const tracked = work.catch((error) => this.log.warn({ err: (error as Error).message }, "sweep step failed; the safety net or a restart repeats it"));
    this.working.add(tracked);
    void tracked.finally(() => this.working.delete(tracked));
  }
}

const isOverdue = (command: Command, now: Date) =>
  (command.status === "SENT" || command.status === "DELIVERED") && command.deadline !== undefined && command.deadline <= now;
// A claimed command may already be on its way: it is not expired.
const isExpired = (command: Command, now: Date) => command.status === "QUEUED" && !command.claim && command.expiresAt !== undefined && command.expiresAt <= now;

/** Each ending the sweeper makes: its span, its alert, whether it still applies, and what its history entry says. */
const ENDINGS = {
  timeOut: { spanName: "command.timeout", alert: "TIMED_OUT", stillDue: isOverdue, detail: (c: Command) => `no final reply within ${c.timeoutSeconds} s` },
  expire: { spanName: "command.expire", alert: "EXPIRED", stillDue: isExpired, detail: () => "not sent before expiresAt" },
} as const;

