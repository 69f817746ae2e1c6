import type { Clock } from "../clock";
import type { Metrics } from "../observability/metrics";
import { activeTrace, inTrace, type TraceContext } from "../observability/tracing";
import type { CommandRepository } from "../store/command-repository";
import type { ActiveCommands } from "./active-commands";
import type { Command, CommandEvent } from "./command";
import { AdaptiveLinger } from "./sent-linger";
import { canTransition, targetOf, type CommandTransition } from "./state-machine";

/** What happened to the command: a transition, its creation, or an escalation (which keeps the status). */
export type CommandChange = CommandTransition | "created" | "escalated";
export type TransitionListener = (command: Command, change: CommandChange) => void;

type Fields = Partial<Omit<Command, "id" | "v" | "status" | "history">>;

/** A change of one command, decided against the command as it stands. */
export interface Mutation {
  set?: Fields;
  unset?: Array<keyof Fields>;
  /** Recorded in `history` in this order and announced one by one; none: a silent change (a claim, alert bookkeeping). */
  steps?: Array<{ change: CommandChange; event: CommandEvent }>;
}

/** Why a change was not made; the string is the caller's reason (e.g. a reply outcome). */
export interface Refusal {
  refused: string;
}

/** Decides what to change given the command as it stands now; called again after a lost race. */
export type Decide = (current: Command) => Mutation | Refusal;

export type Outcome = { command: Command; refused?: undefined } | { command: Command | null; refused: string };

/** What an applied transition records besides the status: extra fields, and the history event. */
export interface TransitionChange {
  set?: Fields;
  unset?: Array<keyof Fields>;
  event: Omit<CommandEvent, "status">;
  /** History entries recorded just before the transition's own (a step the store never saw). */
  precededBy?: CommandEvent[];
}

/** How a change joins a command's waiting write (see `submit`). */
export interface SubmitOptions {
  /** This change opens the command's write and waits this long for company (SENT or DELIVERED, for the device's final reply). */
  lingerMs?: number;
  /**
   * A device's reply: DELIVERED joins a waiting write and lets it wait on for the final reply; a final
   * one joins and ends the wait, and teaches the reply linger how late it came. Any other change ends the wait.
   */
  reply?: "DELIVERED" | "final";
  /** The span the change belongs to (a reply's, a publish's); absent: the active one. Its write and events go there. */
  trace?: TraceContext;
}

const NOT_ALLOWED = "not_allowed_in_state";
/** The wait for a device's final reply: at least this, and as long as most final replies lately took, at most the maximum. */
const REPLY_LINGER_MIN_MS = 25;
const REPLY_LINGER_MAX_MS = 500;
/** Waits begun whose final reply has not come (a silent device's): forgotten past this many. */
const MAX_WAITS_TRACKED = 10_000;
/** Lost compare-and-set races before giving up: each loss means another writer made progress. */
const MAX_ROUNDS = 5;

interface Pending {
  decide: Decide;
  resolve(outcome: Outcome): void;
  reject(error: unknown): void;
  /** The trace context the change was submitted in (tracing on): its write and events belong there. */
  trace: TraceContext;
}

/**
 * Applies changes to commands through the store and tells everyone who listens (subscriptions,
 * alerts, metrics). Every change of a command goes through here, as a compare-and-set on its version.
 * Changes of one command that arrive while a write for it is in flight are stored together in the
 * next write (one update, every step appended to `history`) and then announced one by one, in order:
 * a quick device's SENT, DELIVERED and SUCCEEDED cost one store round trip, not three.
 */
export class CommandLifecycle {
  private readonly listeners: TransitionListener[] = [];
  private readonly queues = new Map<string, Pending[]>();
  /** Commands whose first queued change waits a moment for the next ones (see `submit`'s `linger`). */
  private readonly lingering = new Map<string, () => void>();
  /** When SENT's wait began (performance.now()), until the command's next change that is not a DELIVERED reply. */
  private readonly waitsBegun = new Map<string, number>();
  /** Learns from how late the final replies came after SENT: one write for SENT, DELIVERED and the result. */
  private readonly replyLinger = new AdaptiveLinger(REPLY_LINGER_MIN_MS, REPLY_LINGER_MAX_MS);

  constructor(
    private readonly commands: CommandRepository,
    private readonly active: ActiveCommands,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
  ) {}

  /**
   * How long SENT (and a DELIVERED that finds nothing waiting) waits for the device's final reply: the
   * learnt wait, or its minimum while the device has more to send (its next command waits for SENT).
   */
  replyWaitMs(moreToSend = false): number {
    return moreToSend ? REPLY_LINGER_MIN_MS : this.replyLinger.ms;
  }

  onTransition(listener: TransitionListener): void {
    this.listeners.push(listener);
  }

  created(command: Command): void {
    this.active.observe(command);
    this.metrics.commandTransitions.inc({ status: command.status });
    this.notify(command, "created");
  }

  /**
   * Applies a state-machine transition if the command's status allows it and `change` (given the
   * command as it stands) does not refuse. The command after it, or null.
   */
  async apply(
    id: string,
    transition: CommandTransition,
    change: (current: Command) => TransitionChange | Refusal | null,
    known?: Command,
    options: Pick<SubmitOptions, "lingerMs" | "trace"> = {},
  ): Promise<Command | null> {
    const outcome = await this.submit(id, transitionDecision(transition, change), known, options);
    return outcome.refused === undefined ? outcome.command : null;
  }

  /**
   * Queues a change of the command; resolves once it is stored and announced (or refused). `known`
   * is a copy the caller read, used when the command is not among the active ones in memory.
   * `options.lingerMs`: the change waits up to that long for the command's next changes to store them
   * in one write (SENT, whose DELIVERED and SUCCEEDED follow within milliseconds from a quick device);
   * the device's final reply, or any change that is not a DELIVERED reply, ends the wait at once.
   */
  submit(id: string, decide: Decide, known?: Command, options: SubmitOptions = {}): Promise<Outcome> {
    if (options.reply !== "DELIVERED") this.endWait(id, options.reply === "final");
    return new Promise<Outcome>((resolve, reject) => {
      const pending: Pending = { decide, resolve, reject, trace: options.trace ?? activeTrace() };
      const queue = this.queues.get(id);
      if (queue) {
        queue.push(pending);
        // A change waiting for company got the last it waits for: write them now.
        if (options.reply !== "DELIVERED") this.lingering.get(id)?.();
        return;
      }
      this.queues.set(id, [pending]);
      if (!options.lingerMs || options.lingerMs <= 0) return void this.drain(id, known);
      // Only SENT's waits teach the linger: a DELIVERED's wait is the shorter part of the same time.
      if (options.reply === undefined) {
        if (this.waitsBegun.size >= MAX_WAITS_TRACKED) this.waitsBegun.clear();
        this.waitsBegun.set(id, performance.now());
      }
      const write = () => {
        clearTimeout(timer);
        this.lingering.delete(id);
        void this.drain(id, known);
      };
      const timer = setTimeout(write, options.lingerMs);
      this.lingering.set(id, write);
    });
  }

  /** The command's wait is over; a final reply tells the linger how late it came, written together or not. */
  private endWait(id: string, observe: boolean): void {
    const begun = this.waitsBegun.get(id);
    if (begun === undefined) return;
    this.waitsBegun.delete(id);
    if (observe) this.replyLinger.observe(performance.now() - begun);
  }

  private async drain(id: string, known: Command | undefined): Promise<void> {
    const queue = this.queues.get(id)!;
    while (queue.length > 0) {
      const batch = queue.splice(0, queue.length);
      try {
        await this.writeBatch(id, batch, known);
      } catch (error) {
        for (const pending of batch) pending.reject(error);
      }
      known = undefined;
    }
    this.queues.delete(id);
  }

  private async writeBatch(id: string, batch: Pending[], known: Command | undefined): Promise<void> {
    let base: Command | null = this.active.get(id) ?? known ?? (await this.commands.findById(id));
    for (let round = 0; base && round < MAX_ROUNDS; round++) {
      const plan = planBatch(base, batch, this.clock.now());
      if (!plan.changed) {
        batch.forEach((pending, i) => pending.resolve(plan.outcomes[i]!));
        return;
      }
      // In the context of the batch's last change (a reply that ended SENT's wait, or joined a write in
      // flight), not of whoever started the drain: the write's span sits under the change that completed it.
      const { trace } = batch[batch.length - 1]!;
      const stored = await inTrace(trace, () => this.commands.write(base!, plan.next, plan.fields));
      if (stored) {
        this.active.observe(stored);
        inTrace(trace, () => this.announce(plan, stored));
        batch.forEach((pending, i) => pending.resolve(resolvedOutcome(plan.outcomes[i]!, stored)));
        return;
      }
      // Someone else changed it: look again and decide again.
      base = await this.commands.findById(id);
      if (base) this.active.observe(base);
    }
    for (const pending of batch) pending.resolve({ command: base, refused: base ? NOT_ALLOWED : "unknown_command" });
  }

  /**
   * Each step as a command of its own, in order. Only the last is what the store holds; the ones before
   * it keep the version the write started from, so a replica that takes one into memory and decides on
   * it loses the compare-and-set and reads again, instead of writing over the later steps (a duplicate
   * DELIVERED stored after the SUCCEEDED it arrived with).
   */
  private announce(plan: Plan, stored: Command): void {
    plan.snapshots.forEach(({ historyLength, status, change }, i) => {
      const last = i === plan.snapshots.length - 1;
      const command = last ? stored : { ...stored, v: plan.next.v, status, history: stored.history.slice(0, historyLength) };
      if (change !== "escalated") this.metrics.commandTransitions.inc({ status });
      this.notify(command, change);
    });
  }

  private notify(command: Command, change: CommandChange): void {
    for (const listener of this.listeners) listener(command, change);
  }
}

interface Plan {
  next: Command;
  changed: boolean;
  fields: Set<keyof Command>;
  outcomes: Outcome[];
  snapshots: Array<{ historyLength: number; status: Command["status"]; change: CommandChange }>;
}

/** Applies the batch's decisions one after another in memory: each sees the command as the ones before left it. */
function planBatch(base: Command, batch: Pending[], now: Date): Plan {
  let next = base;
  const plan: Plan = { next, changed: false, fields: new Set(), outcomes: [], snapshots: [] };
  for (const pending of batch) {
    const decision = pending.decide(next);
    if ("refused" in decision) {
      plan.outcomes.push({ command: next, refused: decision.refused });
      continue;
    }
    next = { ...next, ...decision.set };
    for (const field of Object.keys(decision.set ?? {})) plan.fields.add(field as keyof Command);
    for (const field of decision.unset ?? []) {
      delete next[field];
      plan.fields.add(field);
    }
    for (const { change, event } of decision.steps ?? []) {
      next = { ...next, status: event.status, history: [...next.history, event], updatedAt: now };
      plan.fields.add("status").add("updatedAt");
      plan.snapshots.push({ historyLength: next.history.length, status: event.status, change });
    }
    plan.changed = true;
    plan.outcomes.push({ command: next });
  }
  plan.next = next;
  return plan;
}

/** The stored command for the last accepted step; for earlier ones the state in memory, at the version the write started from (see `announce`). */
function resolvedOutcome(outcome: Outcome, stored: Command): Outcome {
  if (outcome.refused !== undefined || !outcome.command) return outcome;
  return { command: outcome.command.history.length === stored.history.length ? stored : outcome.command };
}

function transitionDecision(transition: CommandTransition, change: (current: Command) => TransitionChange | Refusal | null): Decide {
  return (current) => {
    if (!canTransition(current.status, transition)) return { refused: NOT_ALLOWED };
    const decided = change(current);
    if (!decided) return { refused: NOT_ALLOWED };
    if ("refused" in decided) return decided;
    const status = targetOf(transition);
    return {
      set: decided.set,
      unset: decided.unset,
      steps: [
        ...(decided.precededBy ?? []).map((event) => ({ change: "publishAcked" as const, event })),
        { change: transition, event: { ...decided.event, status } },
      ],
    };
  };
}
