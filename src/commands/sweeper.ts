import type { Clock } from "../clock";
import type { Logger } from "../logger";
import type { CommandRepository } from "../store/command-repository";
import type { DeviceRepository } from "../store/device-repository";
import type { Dispatcher } from "./dispatcher";

/**
 * The periodic safety net: whatever a lost wake-up, a crashed replica or a restart left undone is
 * found in the store and done. Every step claims its work with conditional updates, so any number of
 * replicas may sweep at once.
 */
export class Sweeper {
  private timer?: NodeJS.Timeout;
  private sweeping?: Promise<void>;

  constructor(
    private readonly commands: CommandRepository,
    private readonly devices: DeviceRepository,
    private readonly dispatcher: Dispatcher,
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.sweeping) return; // a slow sweep is not stacked on itself
      this.sweeping = this.sweep()
        .catch((error) => this.log.warn({ err: (error as Error).message }, "sweep failed; next round will retry"))
        .finally(() => (this.sweeping = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.sweeping;
  }

  async sweep(): Promise<void> {
    await this.kickStalledQueues();
  }

  /** Online devices with queued commands nobody is sending. */
  private async kickStalledQueues(): Promise<void> {
    const deviceIds = await this.commands.deviceIdsWithPendingDispatch(this.clock.now());
    if (deviceIds.length === 0) return;
    for (const deviceId of await this.devices.onlineAmong(deviceIds)) this.dispatcher.kick(deviceId);
  }
}
