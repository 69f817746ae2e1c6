import { possibleAlertIds } from "../alerts/alert-service";
import type { Clock } from "../clock";
import type { Logger } from "../logger";
import { deliveryIdOf } from "../alerts/webhooks/alert-webhook";
import type { AlertDeliveryRepository } from "../store/alert-delivery-repository";
import type { AlertRepository } from "../store/alert-repository";
import type { AlertWebhookRepository } from "../store/alert-webhook-repository";
import type { CommandRepository } from "../store/command-repository";
import { fleetAbortAlertId } from "../fleet/fleet-command";
import type { FleetCommandRepository } from "../store/fleet-command-repository";
import type { CommandIdQueries, FleetIdQueries } from "../store/store-ports";

/** Commands deleted per batch; a round goes on batch after batch until nothing old is left. */
const BATCH = 200;
const DAY_MS = 86_400_000;
const INTERVAL_MS = 3_600_000;

/** The fleet commands' side of a round: their repository and the indexed lookup of the old finished ones. */
export interface FleetRetention {
  repository: FleetCommandRepository;
  ids: FleetIdQueries;
}

/**
 * Deletes commands that have been final for longer than the retention period, their resolved
 * alerts, and the ended webhook deliveries of their alerts with their attempt claims (RETENTION_DAYS,
 * CONTRACT §6.5), then fleet commands finished (COMPLETED, ABORTED, CANCELED) for as long, with their
 * target chunks and resolved abort alert: at start, then hourly. Ids come from an indexed lookup (the
 * commands, the fleet commands) or follow from them (alert ids from the command, delivery ids from
 * alert and webhook, claim ids from the attempts), and every delete is a point operation by `_id`, so
 * the cost follows what is deleted, not what is kept. A delivery still PENDING is left to its worker.
 * A fleet command's children are commands: they go by the commands' rule.
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
    private readonly fleets: FleetRetention,
    private readonly days: number,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.days === 0) return;
    const round = () => {
      this.running ??= this.purge()
        .then(({ commands, fleetCommands }) => commands + fleetCommands > 0 && this.log.info({ deleted: commands, fleetCommands, days: this.days }, "old commands deleted"))
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

  /** One round: how many commands and fleet commands it deleted. */
  async purge(): Promise<{ commands: number; fleetCommands: number }> {
    const before = new Date(this.clock.now().getTime() - this.days * DAY_MS);
    return { commands: await this.purgeCommands(before), fleetCommands: await this.purgeFleetCommands(before) };
  }

  private async purgeCommands(before: Date): Promise<number> {
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

  private async purgeFleetCommands(before: Date): Promise<number> {
    let deleted = 0;
    while (!this.stopped) {
      const ids = await this.fleets.ids.finishedIdsUpdatedBefore(before, BATCH);
      for (const id of ids) {
        const fleet = await this.fleets.repository.findById(id);
        if (!fleet) continue;
        await this.alerts.deleteIfResolved(fleetAbortAlertId(id));
        if (await this.fleets.repository.delete(fleet)) deleted++;
      }
      if (ids.length < BATCH) break;
    }
    return deleted;
  }
}
