import { possibleAlertIds } from "../alerts/alert-service";
import type { Clock } from "../clock";
import type { Logger } from "../logger";
import type { AlertRepository } from "../store/alert-repository";
import type { CommandRepository } from "../store/command-repository";
import type { CommandIdQueries } from "../store/store-ports";

/** Commands deleted per batch; a round goes on batch after batch until nothing old is left. */
const BATCH = 200;
const DAY_MS = 86_400_000;
const INTERVAL_MS = 3_600_000;

/**
 * Deletes commands that have been final for longer than the retention period, and their resolved
 * alerts (RETENTION_DAYS, CONTRACT §6.5): at start, then hourly. Ids come from an indexed lookup and
 * every delete is a point operation by `_id`, so the cost follows what is deleted, not what is kept.
 */
export class Retention {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly commands: CommandRepository,
    private readonly alerts: AlertRepository,
    private readonly ids: Pick<CommandIdQueries, "finalIdsUpdatedBefore">,
    private readonly days: number,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.days === 0) return;
    const round = () => {
      this.running ??= this.purge()
        .then((deleted) => deleted > 0 && this.log.info({ deleted, days: this.days }, "old commands deleted"))
        .catch((error) => this.log.warn({ err: (error as Error).message }, "retention round failed; the next one retries"))
        .then(() => (this.running = undefined));
    };
    round();
    this.timer = setInterval(round, INTERVAL_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** One round: how many commands it deleted. */
  async purge(): Promise<number> {
    const before = new Date(this.clock.now().getTime() - this.days * DAY_MS);
    let deleted = 0;
    while (!this.stopped) {
      const ids = await this.ids.finalIdsUpdatedBefore(before, BATCH);
      for (const id of ids) {
        const command = await this.commands.findById(id);
        if (!command) continue;
        // Alerts first: a crash in between leaves a command without its resolved alerts, never an alert without its command.
        for (const alertId of possibleAlertIds(command)) await this.alerts.deleteIfResolved(alertId);
        if (await this.commands.delete(id)) deleted++;
      }
      if (ids.length < BATCH) break;
    }
    return deleted;
  }
}
