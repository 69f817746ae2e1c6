import type { Alert } from "../alerts/alert";
import type { Principal } from "../authz/principal";
import type { Clock } from "../clock";
import type { Command, CommandStatus } from "../commands/command";
import { idForKey, type CommandService } from "../commands/command-service";
import { GatewayError } from "../errors";
import type { Logger } from "../logger";
import type { CommandRepository } from "../store/command-repository";
import type { FleetCommandRepository } from "../store/fleet-command-repository";
import { cancelQueuedChildren } from "./fleet-children";
import {
  childKey,
  FAILING_CHILD_STATUSES,
  fleetAbortAlertId,
  isFinished,
  SETTLED_CHILD_STATUSES,
  type FleetCommand,
  type FleetCommandStatus,
  type SkippedDevice,
} from "./fleet-command";
import type { FleetTargets } from "./fleet-targets";
import { inSpan } from "../observability/tracing";
import { SendWindow } from "./send-window";

/** Children being sent at once, at most (enough for 100,000 per minute over a store round trip of a few ms) and at least. */
const MAX_IN_FLIGHT = 32;
const MIN_IN_FLIGHT = 2;
/** A send slower than the fastest × this + the margin means the store is queueing (tighter than the window's default). */
const SLOW_FACTOR = 2;
const SLOW_MARGIN_MS = 5;
/**
 * Children due within this long start together, as a wave (their inserts go as one store command); a
 * rate slower than a child per wave starts one at a time. A start may be this late and catch up.
 */
const WAVE_MS = 100;
const TICK_MS = 250;
/** Progress is stored every this many ticks (1 s), published on every tick it changed (≤ 4 per second). */
const STORE_EVERY_TICKS = 4;
const MAX_REFUSED_KEPT = 1000;
const MAX_ROUNDS = 5;

export interface RolloutPorts {
  fleets: FleetCommandRepository;
  commands: CommandRepository;
  send: CommandService;
  targets: FleetTargets;
  raiseAlert(alert: Alert): Promise<void>;
  publish(fleet: FleetCommand): void;
  clock: Clock;
  log: Logger;
}

interface ChildState {
  status: CommandStatus;
  v: number;
  steps: number;
}

/**
 * Drives one fleet command on the replica holding its lease: starts the children evenly paced
 * (interval 60000 / maxPerMinute), follows their transitions to keep the counts by status, applies
 * the abort rule and finishes it. A takeover builds the same state from the stored progress and the
 * children themselves (their ids are derived from the fleet command and the device).
 */
export class Rollout {
  private deviceIds: string[] = [];
  private childIds: string[] = [];
  private readonly children = new Map<string, ChildState>();
  private counts: Partial<Record<CommandStatus, number>> = {};
  private refused: SkippedDevice[] = [];
  private skipped = 0;
  private next = 0;
  private inFlight = 0;
  private nextDue = 0;
  /** When the current wave of starts began. */
  private waveAt = -Infinity;
  private firstFailing?: Command;
  private loaded = false;
  private stopped = false;
  private finishing = false;
  private toPublish = false;
  private unsaved = false;
  private ticks = 0;
  private saving: Promise<unknown> = Promise.resolve();
  private pumpTimer?: NodeJS.Timeout;
  private startTimer?: NodeJS.Timeout;
  private readonly ticker: NodeJS.Timeout;
  private readonly intervalMs: number;
  private readonly principal: Principal;
  private readonly window = new SendWindow(MIN_IN_FLIGHT, MAX_IN_FLIGHT, SLOW_FACTOR, SLOW_MARGIN_MS);

  constructor(
    private fleet: FleetCommand,
    private readonly ports: RolloutPorts,
  ) {
    this.intervalMs = 60_000 / fleet.maxPerMinute;
    this.principal = fleet.creator;
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.ticker.unref();
  }

  get id(): string {
    return this.fleet.id;
  }

  /** The fleet command with this replica's current progress. */
  view(): FleetCommand {
    return { ...this.fleet, counts: { ...this.counts }, skipped: this.skipped, next: this.next, refused: this.refused };
  }

  /** Finished and nothing left to follow: the lease can go. */
  get settled(): boolean {
    return this.stopped || (isFinished(this.fleet.status) && this.activeChildren() === 0 && this.inFlight === 0 && !this.unsaved);
  }

  async start(): Promise<void> {
    const fresh = await this.ports.fleets.findById(this.fleet.id);
    if (!fresh) return this.stop();
    this.fleet = fresh;
    this.skipped = fresh.skipped;
    this.refused = [...fresh.refused];
    this.next = fresh.next;
    if (fresh.status === "SCHEDULED") return this.scheduleStart();
    await this.load();
    this.resume();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.ticker);
    clearTimeout(this.pumpTimer);
    clearTimeout(this.startTimer);
  }

  /** A change of the fleet command stored by anyone (a mutation, this replica). */
  changed(fresh: FleetCommand): void {
    if (fresh.v <= this.fleet.v) return;
    const before = this.fleet.status;
    this.fleet = { ...fresh };
    if (before === fresh.status) return;
    this.markChanged();
    if (fresh.status === "RUNNING" && this.loaded) this.resume();
    else if (fresh.status === "CANCELED") this.track(this.cancelQueued());
  }

  /** A child's transition, from this replica's lifecycle or another's over the bus: newer copies only. */
  observe(command: Command): void {
    const known = this.children.get(command.id);
    if (known && !(command.v > known.v || (command.v === known.v && command.history.length > known.steps))) return;
    if (known) this.counts[known.status] = (this.counts[known.status] ?? 1) - 1;
    this.counts[command.status] = (this.counts[command.status] ?? 0) + 1;
    this.children.set(command.id, { status: command.status, v: command.v, steps: command.history.length });
    if (!this.firstFailing && FAILING_CHILD_STATUSES.includes(command.status)) this.firstFailing = command;
    this.markChanged();
    this.checkAbort();
    this.checkCompleted();
  }

  private scheduleStart(): void {
    const wait = (this.fleet.startAt?.getTime() ?? 0) - this.ports.clock.now().getTime();
    // Long waits are re-armed: Node's timers overflow past 24.8 days.
    const due = () => {
      if (wait > 3_600_000) return this.scheduleStart();
      // The store was away: try again shortly.
      this.track(this.begin().catch((error) => (this.stopped || setTimeout(() => this.scheduleStart(), 1000).unref(), Promise.reject(error))));
    };
    this.startTimer = setTimeout(due, Math.min(Math.max(0, wait), 3_600_000));
    this.startTimer.unref();
  }

  /** SCHEDULED → RUNNING: the target is resolved now and kept. */
  private async begin(): Promise<void> {
    if (this.stopped || this.fleet.status !== "SCHEDULED") return;
    const resolved = await this.ports.targets.resolve(this.principal, this.fleet);
    await this.ports.fleets.saveTargets(this.fleet.id, resolved.chunks);
    const now = this.ports.clock.now();
    const started = await this.save((current) =>
      current.status === "SCHEDULED"
        ? { status: "RUNNING", startedAt: now, targeted: resolved.targeted, skipped: resolved.skipped, sendable: resolved.sendable, targetChunks: resolved.chunks.length }
        : null,
    );
    if (!started) return;
    this.skipped = started.skipped;
    this.ports.publish(this.view());
    await this.load();
    this.resume();
  }

  /** The target and what became of each child up to the stored position (read by id). */
  private async load(): Promise<void> {
    const chunks = await this.ports.fleets.targets(this.fleet.id, this.fleet.targetChunks);
    this.deviceIds = chunks.flatMap((c) => c.deviceIds);
    this.childIds = this.deviceIds.map((deviceId) => idForKey(this.principal, childKey(this.fleet.id, deviceId)));
    // Children started after the last save (up to a second of them) are found by their send again: the
    // id is derived from the key, so the insert fails and the stored child is returned. Reading ahead
    // instead would cost a read for every id in the window, and a fresh fleet command has none.
    const ids = this.childIds.slice(0, Math.min(this.childIds.length, this.next));
    const reader = async () => {
      for (let id = ids.pop(); id !== undefined; id = ids.pop()) {
        const child = await this.ports.commands.findById(id);
        if (child) this.observe(child);
      }
    };
    await Promise.all(Array.from({ length: 8 }, reader));
    this.loaded = true;
    this.checkCompleted();
  }

  private resume(): void {
    this.nextDue = this.ports.clock.now().getTime();
    this.pump();
  }

  /** Starts every child that is due, keeping at most the send window's sends under way; re-arms itself for the next. */
  private pump(): void {
    clearTimeout(this.pumpTimer);
    // Not while finishing: an abort decided starts nothing more, even before it is stored.
    while (!this.stopped && !this.finishing && this.fleet.status === "RUNNING" && this.inFlight < this.window.size) {
      while (this.next < this.childIds.length && this.children.has(this.childIds[this.next]!)) this.next++;
      if (this.next >= this.childIds.length) break;
      const now = this.ports.clock.now().getTime();
      if (this.nextDue > now) {
        // The next wave: when its first child is due, and not before a wave's length after the last one.
        this.pumpTimer = setTimeout(() => this.pump(), Math.max(this.nextDue, this.waveAt + WAVE_MS) - now);
        this.pumpTimer.unref();
        return;
      }
      if (this.waveAt + WAVE_MS <= now) this.waveAt = now;
      // The rate's interval, or longer while the store is queueing (the send window's gap).
      const step = Math.max(this.intervalMs, this.window.gapMs);
      this.nextDue = Math.max(this.nextDue, now - WAVE_MS) + step;
      const index = this.next++;
      this.inFlight++;
      this.markChanged();
      const sendStarted = performance.now();
      void this.startChild(index).finally(() => {
        this.window.record(performance.now() - sendStarted);
        this.inFlight--;
        this.pump();
        this.checkCompleted();
      });
    }
  }

  private async startChild(index: number): Promise<void> {
    const deviceId = this.deviceIds[index]!;
    const fleet = this.fleet;
    try {
      // Each child is a trace of its own (a fleet of thousands is not one trace), linked to the fleet command's.
      const span = { root: true, links: [fleet.traceparent], attributes: { "fleet_command.id": fleet.id, "command.device_id": deviceId } };
      const child = await inSpan("fleet.child", span, (trace) =>
        this.ports.send.send(
          this.principal,
          {
            deviceId,
            type: fleet.type,
            payload: fleet.payload,
            timeoutSeconds: fleet.timeoutSeconds,
            expiresInSeconds: fleet.expiresInSeconds,
            idempotencyKey: childKey(fleet.id, deviceId),
            fleetCommandId: fleet.id,
          },
          trace,
        ),
      );
      this.observe(child);
      // Started just as the fleet command was canceled or aborted: it must not run.
      if (isFinished(this.fleet.status) && child.status === "QUEUED") await this.cancelQueued();
    } catch (error) {
      if (error instanceof GatewayError) {
        this.skipped++;
        if (this.refused.length < MAX_REFUSED_KEPT) this.refused.push({ deviceId, reason: `${error.code}: ${error.message}` });
        this.markChanged();
        return;
      }
      // The store is away: this device's turn comes again.
      this.ports.log.warn({ fleetCommandId: fleet.id, deviceId, err: (error as Error).message }, "fleet child not started; trying again");
      this.next = Math.min(this.next, index);
    }
  }

  private checkAbort(): void {
    const rule = this.fleet.abort;
    if (!rule || this.finishing || !this.loaded || !(this.fleet.status === "RUNNING" || this.fleet.status === "PAUSED")) return;
    const settled = this.sum(SETTLED_CHILD_STATUSES);
    const failing = this.sum(FAILING_CHILD_STATUSES);
    if (settled < rule.minCompleted || failing * 100 < rule.failurePercent * settled) return;
    const reason = `${failing} of ${settled} finished children FAILED, TIMED_OUT or EXPIRED (${((failing * 100) / settled).toFixed(1)} % ≥ ${rule.failurePercent} %)`;
    this.track(this.finish("ABORTED", reason));
  }

  private checkCompleted(): void {
    if (this.finishing || !this.loaded || this.fleet.status !== "RUNNING" || this.inFlight > 0) return;
    if (this.next < this.childIds.length || this.activeChildren() > 0) return;
    this.track(this.finish("COMPLETED"));
  }

  private async finish(status: FleetCommandStatus, abortReason?: string): Promise<void> {
    this.finishing = true;
    clearTimeout(this.pumpTimer);
    let finished: FleetCommand | null = null;
    try {
      finished = await this.save((current) =>
        current.status === "RUNNING" || current.status === "PAUSED" ? { status, finishedAt: this.ports.clock.now(), ...(abortReason && { abortReason }) } : null,
      );
    } finally {
      this.finishing = false;
      // Not finished after all (changed meanwhile, or the store was away): go on if still RUNNING.
      if (!finished) this.pump();
    }
    if (!finished) return;
    this.ports.publish(this.view());
    if (status !== "ABORTED") return;
    await this.cancelQueued();
    const failing = this.firstFailing!;
    await this.ports.raiseAlert({
      id: fleetAbortAlertId(this.fleet.id),
      tenant: this.fleet.tenant,
      site: failing.site,
      kind: "FAILED",
      commandId: failing.id,
      deviceId: failing.deviceId,
      level: 0,
      raisedAt: this.ports.clock.now(),
      message: `Fleet command ${JSON.stringify(this.fleet.name)} (${this.fleet.id}) ABORTED: ${abortReason}`,
    });
  }

  private async cancelQueued(): Promise<void> {
    const queued = [...this.children].filter(([, child]) => child.status === "QUEUED").map(([id]) => id);
    await cancelQueuedChildren(this.ports.send, this.principal, queued);
  }

  /**
   * A caller's status change (pause, resume, cancel) in this rollout's lane of writes, so it never races a
   * progress write of this replica; null when `decide` refuses the stored state or the write kept missing.
   */
  move(decide: (current: FleetCommand) => Partial<FleetCommand> | null): Promise<FleetCommand | null> {
    return this.save(decide);
  }

  /**
   * Stores a change decided against the fleet command as stored (compare-and-set), with the progress.
   * One at a time: two writes of this replica on one version would race each other (and on FerretDB
   * v1 both could pass, the slower answer then overwriting the newer status in memory).
   */
  private save(decide: (current: FleetCommand) => Partial<FleetCommand> | null): Promise<FleetCommand | null> {
    const saved = this.saving.then(() => this.saveNow(decide));
    this.saving = saved.catch(() => undefined);
    return saved;
  }

  private async saveNow(decide: (current: FleetCommand) => Partial<FleetCommand> | null): Promise<FleetCommand | null> {
    let base = this.fleet;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const change = decide(base);
      if (!change) {
        this.fleet = base;
        return null;
      }
      this.unsaved = false;
      const stored = await this.ports.fleets.write(base, { ...change, counts: this.counts, next: this.next, skipped: this.skipped, refused: this.refused });
      if (stored) {
        // As for a change stored by anyone: a status changed here (a caller's move) takes effect too.
        this.changed(stored);
        return stored;
      }
      const fresh = await this.ports.fleets.findById(base.id);
      if (!fresh) return null;
      this.changed(fresh);
      base = fresh;
    }
    this.unsaved = true;
    return null;
  }

  private tick(): void {
    if (!this.toPublish && !this.unsaved) return;
    this.ticks++;
    if (this.toPublish) this.ports.publish(this.view());
    this.toPublish = false;
    if (this.unsaved && this.ticks % STORE_EVERY_TICKS === 0) this.track(this.save(() => ({})));
  }

  private markChanged(): void {
    this.toPublish = true;
    this.unsaved = true;
  }

  private activeChildren(): number {
    return this.sum(["QUEUED", "SENT", "DELIVERED"]);
  }

  private sum(statuses: readonly CommandStatus[]): number {
    return statuses.reduce((total, status) => total + (this.counts[status] ?? 0), 0);
  }

  private track(work: Promise<unknown>): void {
    work.catch((error) => {
      this.unsaved = true;
      this.ports.log.warn({ fleetCommandId: this.fleet.id, err: (error as Error).message }, "fleet command step failed; tried again");
    });
  }
}
