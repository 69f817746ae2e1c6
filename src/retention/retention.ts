import { possibleAlertIds } from "../alerts/alert-service";
import type { Clock } from "../clock";
import type { Logger } from "../logger";
import { deliveryIdOf } from "../alerts/webhooks/alert-webhook";
import type { AlertDeliveryRepository } from "../store/alert-delivery-repository";
import type { AlertRepository } from "../store/alert-repository";
import type { AlertWebhookRepository } from "../store/alert-webhook-repository";
import type { CommandRepository } from "../store/command-repository";
import type { CommandIdQueries } from "../store/store-ports";

/** Commands deleted per batch; a round goes on batch after batch until nothing old is left. */
const BATCH = 200;
const DAY_MS = 86_400_000;
const INTERVAL_MS = 3_600_000;

/**
 * Deletes commands that have been final for longer than the retention period, their resolved
 * alerts, and the ended webhook deliveries of their alerts with their attempt claims (RETENTION_DAYS,
 * CONTRACT §6.5): at start, then hourly. Ids come from an indexed lookup (the commands) or follow
 * from them (alert ids from the command, delivery ids from alert and webhook, claim ids from the
 * attempts), and every delete is a point operation by `_id`, so the cost follows what is deleted, not
 * what is kept. A delivery still PENDING is left to its worker.
 */
export class Retention {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly commands: CommandRepository,
    private readonly alerts: AlertRepository,
    private readonly alertDeliveries: { deliveries: AlertDeliveryRepository; webhooks: Pick<AlertWebhookRepository, "forTenant"> },
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
    // A tenant's webhooks, read once a round (a handful per tenant).
    const webhookIds = new Map<string, string[]>();
    const webhooksOf = async (tenant: string) => {
      let ids = webhookIds.get(tenant);
      if (!ids) webhookIds.set(tenant, (ids = (await this.alertDeliveries.webhooks.forTenant(tenant)).map((webhook) => webhook.id)));
      return ids;
    };
    while (!this.stopped) {
      const ids = await this.ids.finalIdsUpdatedBefore(before, BATCH);
      for (const id of ids) {
        const command = await this.commands.findById(id);
        if (!command) continue;
        // Deliveries, then alerts, then the command: a crash in between leaves a parent without children, never the reverse.
        for (const alertId of possibleAlertIds(command)) {
          for (const webhookId of await webhooksOf(command.tenant)) await this.alertDeliveries.deliveries.deleteEnded(deliveryIdOf(alertId, webhookId));
          await this.alerts.deleteIfResolved(alertId);
        }
        if (await this.commands.delete(id)) deleted++;
      }
      if (ids.length < BATCH) break;
    }
    return deleted;
  }
}
