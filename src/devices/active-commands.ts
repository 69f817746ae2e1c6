import type { Command } from "../commands/command";

/**
 * A device's commands that are not yet final (QUEUED, SENT, DELIVERED), from which its `desired` state
 * and `pendingCommands` are derived. The in-memory registry (src/commands/active-commands.ts) answers it.
 */
export interface ActiveCommandsView {
  forDevice(deviceId: string): Promise<readonly Command[]>;
}
