import type { Command } from "../commands/command";
import type { CommandRepository } from "../store/command-repository";
import { ACTIVE_STATUSES } from "./device-state";

/**
 * A device's commands that are not yet final (QUEUED, SENT, DELIVERED), from which its `desired` state
 * and `pendingCommands` are derived. The one seam for them: an in-memory registry of active commands
 * can take the store query's place without anything else changing.
 */
export interface ActiveCommandsView {
  forDevice(deviceId: string): Promise<readonly Command[]>;
}

/** Asks the store each time. */
export class StoredActiveCommands implements ActiveCommandsView {
  constructor(private readonly commands: CommandRepository) {}

  forDevice(deviceId: string): Promise<readonly Command[]> {
    return this.commands.findForDevice(deviceId, ACTIVE_STATUSES);
  }
}
