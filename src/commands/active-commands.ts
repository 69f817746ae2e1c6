import type { ActiveCommandsView } from "../devices/active-commands";
import { byDue, dueAt, type Command, type CommandStatus } from "./command";

/** Statuses in which the gateway still has something to do for a command (send it, wait for it). */
export const ACTIVE_STATUSES: readonly CommandStatus[] = ["QUEUED", "SENT", "DELIVERED"];

const MAX_SETTLED = 20_000;

export type ActiveCommandListener = (command: Command) => void;

/**
 * Every command not yet settled (QUEUED, SENT, DELIVERED), as stored, with its version: rebuilt from
 * the store at start, kept current by this replica's writes and by the other replicas' transitions on
 * the event bus. The dispatcher reads a device's queue here, the schedule its deadlines and expiries,
 * the reply ingest the command a reply is about: none of them asks the store.
 */
export class ActiveCommands implements ActiveCommandsView {
  private readonly byId = new Map<string, Command>();
  /** Per device, its active commands by id. */
  private readonly byDevice = new Map<string, Map<string, Command>>();
  /** Per device, its QUEUED commands in the order they fall due (`dueAt`), oldest first. */
  private readonly queues = new Map<string, Command[]>();
  private readonly listeners: ActiveCommandListener[] = [];
  /** Versions of commands that recently left: a late copy of an earlier state must not bring one back. */
  private readonly settled = new Map<string, number>();

  /** Called with every command that became or stayed active after a change (for the schedule). */
  onActive(listener: ActiveCommandListener): void {
    this.listeners.push(listener);
  }

  get(id: string): Command | undefined {
    return this.byId.get(id);
  }

  /**
   * Records what the store holds now. Ignores a copy older than the one known (an echo of this
   * replica's own event, or events that crossed), so memory only moves forward.
   */
  observe(command: Command): void {
    const known = this.byId.get(command.id);
    if (known && !isNewer(command, known)) return;
    const settledAt = this.settled.get(command.id);
    if (!known && settledAt !== undefined && command.v <= settledAt) return;
    if (known?.status === "QUEUED") this.dequeue(known);
    if (!ACTIVE_STATUSES.includes(command.status)) {
      this.byId.delete(command.id);
      this.forget(command);
      this.remember(command);
      return;
    }
    this.settled.delete(command.id);
    this.byId.set(command.id, command);
    const ofDevice = this.byDevice.get(command.deviceId) ?? new Map<string, Command>();
    ofDevice.set(command.id, command);
    this.byDevice.set(command.deviceId, ofDevice);
    if (command.status === "QUEUED") this.enqueue(command);
    for (const listener of this.listeners) listener(command);
  }

  /** The device's QUEUED commands in the order they fall due, oldest first (do not modify). */
  queued(deviceId: string): readonly Command[] {
    return this.queues.get(deviceId) ?? [];
  }

  /** Whether a QUEUED command of the device is due at `now` (not all of them are scheduled for later). */
  hasDueQueued(deviceId: string, now: Date): boolean {
    const first = this.queues.get(deviceId)?.[0];
    return first !== undefined && dueAt(first) <= now;
  }

  /** Devices with QUEUED commands. */
  devicesWithQueued(): IterableIterator<string> {
    return this.queues.keys();
  }

  /** A device's active commands, oldest first. */
  ofDevice(deviceId: string): Command[] {
    return [...(this.byDevice.get(deviceId)?.values() ?? [])].sort(byCreation);
  }

  /** For device state (desired, pendingCommands): memory answers, the store is not asked. */
  forDevice(deviceId: string): Promise<readonly Command[]> {
    return Promise.resolve(this.ofDevice(deviceId));
  }

  /** SENT commands of a device, oldest first: published again when it reconnects. */
  sent(deviceId: string): Command[] {
    return this.ofDevice(deviceId).filter((c) => c.status === "SENT");
  }

  all(): IterableIterator<Command> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }

  private forget(command: Command): void {
    const ofDevice = this.byDevice.get(command.deviceId);
    ofDevice?.delete(command.id);
    if (ofDevice?.size === 0) this.byDevice.delete(command.deviceId);
  }

  private remember(command: Command): void {
    this.settled.delete(command.id);
    this.settled.set(command.id, command.v);
    // Oldest first (insertion order): copies cross on the bus within seconds, not after thousands of commands.
    if (this.settled.size > MAX_SETTLED) this.settled.delete(this.settled.keys().next().value!);
  }

  private enqueue(command: Command): void {
    const queue = this.queues.get(command.deviceId) ?? [];
    // Nearly always appended: commands are created in order, and few are scheduled.
    let i = queue.length;
    while (i > 0 && byDue(queue[i - 1]!, command) > 0) i--;
    queue.splice(i, 0, command);
    this.queues.set(command.deviceId, queue);
  }

  private dequeue(command: Command): void {
    const queue = this.queues.get(command.deviceId);
    if (!queue) return;
    const i = queue.findIndex((c) => c.id === command.id);
    if (i >= 0) queue.splice(i, 1);
    if (queue.length === 0) this.queues.delete(command.deviceId);
  }
}

/**
 * Newer by version; at the same version the longer history wins, because the steps of one coalesced
 * write are announced one by one with the version of the write that stored them all.
 */
export function isNewer(candidate: Command, known: Command): boolean {
  return candidate.v > known.v || (candidate.v === known.v && candidate.history.length > known.history.length);
}

function byCreation(a: Command, b: Command): number {
  return a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
