import type { Command } from "../commands/command";
import type { Logger } from "../logger";
import type { DispatchLeases } from "../commands/dispatch-leases";
import { isFinished, type FleetCommand } from "./fleet-command";
import { Rollout, type RolloutPorts } from "./rollout";

export interface FleetDriverOptions {
  /** This replica's id (the lease owner). */
  owner: string;
  /** How long a fleet command's lease holds: a dead driver's fleet commands are taken over after it. */
  leaseMs: number;
}

/**
 * Which fleet commands this replica drives: every replica knows the unfinished ones (read at start,
 * then told of new ones and of changes over the bus) and tries to lease each, by a unique insert that
 * only one replica can win; the holder renews it every third of the lease and drives a Rollout.
 * A replica that dies stops renewing, and another takes over within a lease period.
 */
export class FleetDriver {
  private readonly known = new Map<string, FleetCommand>();
  private readonly rollouts = new Map<string, Rollout>();
  private readonly tending = new Set<string>();
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly leases: DispatchLeases,
    private readonly ports: RolloutPorts,
    private readonly options: FleetDriverOptions,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    for (const fleet of await this.ports.fleets.unfinished()) this.known.set(fleet.id, fleet);
    this.timer = setInterval(() => this.tendAll(), Math.floor(this.options.leaseMs / 3));
    this.timer.unref();
    this.tendAll();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const held = [...this.rollouts.values()];
    for (const rollout of held) rollout.stop();
    this.rollouts.clear();
    // Let another replica take over at once rather than after the lease runs out.
    await Promise.allSettled(held.map((rollout) => this.leases.release(leaseId(rollout.id), this.options.owner)));
  }

  /** A fleet command created or changed on any replica. */
  changed(fleet: FleetCommand): void {
    const known = this.known.get(fleet.id);
    if (known && known.v > fleet.v) return;
    this.rollouts.get(fleet.id)?.changed(fleet);
    if (isFinished(fleet.status)) {
      this.known.delete(fleet.id);
      return;
    }
    this.known.set(fleet.id, fleet);
    if (!known) this.tend(fleet.id);
  }

  /** A child's transition on any replica. */
  childChanged(command: Command): void {
    if (command.fleetCommandId) this.rollouts.get(command.fleetCommandId)?.observe(command);
  }

  /** The fleet command as this replica drives it (fresher than the store), if it does. */
  current(id: string): FleetCommand | undefined {
    return this.rollouts.get(id)?.view();
  }

  /** A caller's status change through the rollout's lane of writes, if this replica drives it (else undefined). */
  move(id: string, decide: (current: FleetCommand) => Partial<FleetCommand> | null): Promise<FleetCommand | null> | undefined {
    return this.rollouts.get(id)?.move(decide);
  }

  private tendAll(): void {
    for (const id of new Set([...this.known.keys(), ...this.rollouts.keys()])) this.tend(id);
  }

  /** Renews the lease of a driven fleet command (and lets it go once settled), or tries to take one over. */
  private tend(id: string): void {
    if (this.stopped || this.tending.has(id)) return;
    this.tending.add(id);
    void this.tendOne(id)
      .catch((error) => this.log.warn({ fleetCommandId: id, err: (error as Error).message }, "fleet lease step failed; tried again"))
      .finally(() => this.tending.delete(id));
  }

  private async tendOne(id: string): Promise<void> {
    const rollout = this.rollouts.get(id);
    const now = this.ports.clock.now();
    if (rollout?.settled) {
      rollout.stop();
      this.rollouts.delete(id);
      this.known.delete(id);
      await this.leases.release(leaseId(id), this.options.owner);
      return;
    }
    const held = await this.leases.acquire(leaseId(id), this.options.owner, now, this.options.leaseMs, rollout !== undefined);
    if (this.stopped) return;
    if (rollout && !held) {
      this.log.warn({ fleetCommandId: id }, "fleet command lease lost; another replica drives it");
      rollout.stop();
      this.rollouts.delete(id);
    } else if (!rollout && held && this.known.has(id)) {
      const fleet = this.known.get(id)!;
      const started = new Rollout(fleet, this.ports);
      this.rollouts.set(id, started);
      this.log.info({ fleetCommandId: id }, "driving fleet command");
      try {
        await started.start();
      } catch (error) {
        // Not taken after all: the next round tries again, on this replica or another.
        started.stop();
        this.rollouts.delete(id);
        await this.leases.release(leaseId(id), this.options.owner).catch(() => undefined);
        throw error;
      }
    }
  }
}

const leaseId = (fleetCommandId: string) => `fleet:${fleetCommandId}`;
