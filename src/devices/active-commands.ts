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

type Waiter = { resolve: (commands: Command[]) => void; reject: (error: unknown) => void };

/**
 * Asks the store. The devices asked for in one turn of the event loop (a page of devices in one
 * request) are read with one query, not one per device.
 */
export class StoredActiveCommands implements ActiveCommandsView {
  private batch: Map<string, Waiter[]> | null = null;

  constructor(private readonly commands: CommandRepository) {}

  forDevice(deviceId: string): Promise<readonly Command[]> {
    return new Promise((resolve, reject) => {
      if (!this.batch) {
        this.batch = new Map();
        setImmediate(() => void this.flush());
      }
      const waiters = this.batch.get(deviceId) ?? [];
      waiters.push({ resolve, reject });
      this.batch.set(deviceId, waiters);
    });
  }

  private async flush(): Promise<void> {
    const batch = this.batch!;
    this.batch = null;
    try {
      const byDevice = new Map<string, Command[]>();
      for (const command of await this.commands.findForDevices([...batch.keys()], ACTIVE_STATUSES)) {
        byDevice.set(command.deviceId, [...(byDevice.get(command.deviceId) ?? []), command]);
      }
      for (const [deviceId, waiters] of batch) for (const waiter of waiters) waiter.resolve(byDevice.get(deviceId) ?? []);
    } catch (error) {
      for (const waiters of batch.values()) for (const waiter of waiters) waiter.reject(error);
    }
  }
}
