import type { Clock } from "../clock";
import type { Metrics } from "../observability/metrics";
import type { CommandRepository, TransitionChange } from "../store/command-repository";
import type { Command } from "./command";
import type { CommandTransition } from "./state-machine";

/** What happened to the command: a transition, its creation, or an escalation (which keeps the status). */
export type CommandChange = CommandTransition | "created" | "escalated";
export type TransitionListener = (command: Command, change: CommandChange) => void;

/**
 * Applies state-machine transitions through the store and tells everyone who listens (subscriptions,
 * alerts, metrics). Every change of a command's status goes through here.
 */
export class CommandLifecycle {
  private readonly listeners: TransitionListener[] = [];

  constructor(
    private readonly commands: CommandRepository,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
  ) {}

  onTransition(listener: TransitionListener): void {
    this.listeners.push(listener);
  }

  created(command: Command): void {
    this.metrics.commandTransitions.inc({ status: command.status });
    this.notify(command, "created");
  }

  escalated(command: Command): void {
    this.notify(command, "escalated");
  }

  /** The command after the transition, or null if its status no longer allowed it. */
  async apply(id: string, transition: CommandTransition, change: TransitionChange): Promise<Command | null> {
    const updated = await this.commands.transition(id, transition, change, this.clock.now());
    if (!updated) return null;
    // A step recorded on the way (SENT, when the device's reply came before the PUBACK was stored)
    // is announced too, as the command stood right after it: every transition reaches subscribers.
    const steps = change.precededBy ?? [];
    steps.forEach((step, i) => {
      const historyLength = updated.history.length - steps.length + i;
      this.metrics.commandTransitions.inc({ status: step.status });
      this.notify({ ...updated, status: step.status, history: updated.history.slice(0, historyLength + 1) }, "publishAcked");
    });
    this.metrics.commandTransitions.inc({ status: updated.status });
    this.notify(updated, transition);
    return updated;
  }

  private notify(command: Command, change: CommandChange): void {
    for (const listener of this.listeners) listener(command, change);
  }
}
