import type { Clock } from "../clock";
import type { CommandTypeDefinition } from "../catalog/command-types";
import type { ActiveCommands } from "./active-commands";
import { dueAt, type Command } from "./command";
import type { CommandLifecycle } from "./lifecycle";

/**
 * Superseding (CONTRACT §6.2): of a device's commands of a superseding type that are due, only the one
 * that fell due last is worth sending; every earlier one still QUEUED and never handed to the broker
 * (no claim) is CANCELED with `supersededBy` naming it. Found in memory, one compare-and-set each.
 * Run when such a command is sent, and by the dispatcher before it sends (which covers a scheduled
 * command falling due, and a crash between storing a command and superseding for it).
 */
export class Superseding {
  constructor(
    private readonly active: ActiveCommands,
    private readonly lifecycle: CommandLifecycle,
    private readonly definitionOf: (type: string) => CommandTypeDefinition | undefined,
    private readonly clock: Clock,
  ) {}

  /** Cancels what the device's due commands supersede; resolves with the commands canceled, once stored and announced. */
  async supersedeDue(deviceId: string): Promise<Command[]> {
    const now = this.clock.now();
    // The queue is in the order of falling due: walking it backwards, the first due command of a type wins.
    const winners = new Map<string, Command>();
    const superseded: Array<{ command: Command; by: Command }> = [];
    const queue = this.active.queued(deviceId);
    for (let i = queue.length - 1; i >= 0; i--) {
      const command = queue[i]!;
      if (dueAt(command) > now || !this.definitionOf(command.type)?.supersedes) continue;
      const winner = winners.get(command.type);
      if (!winner) winners.set(command.type, command);
      else if (!command.claim) superseded.push({ command, by: winner });
    }
    const canceled = await Promise.all(superseded.map(({ command, by }) => this.cancel(command, by)));
    return canceled.filter((command): command is Command => command !== null);
  }

  private cancel(command: Command, by: Command): Promise<Command | null> {
    return this.lifecycle.apply(command.id, "cancel", (current) =>
      // A claim means it may be on its way to the device: never touched.
      current.claim || current.attempt !== command.attempt
        ? null
        : { set: { supersededBy: by.id }, event: { at: this.clock.now(), actor: by.issuedBy, detail: `superseded by ${by.id}` } },
    );
  }
}
