import { randomBytes, randomUUID } from "node:crypto";
import { abilityOf, accessibleFilter, allows } from "../../authz/ability";
import type { Principal } from "../../authz/principal";
import type { Clock } from "../../clock";
import { badInput, forbidden, notFound } from "../../errors";
import type { AlertDeliveryRepository } from "../../store/alert-delivery-repository";
import type { AlertWebhookRepository, AlertWebhookView } from "../../store/alert-webhook-repository";
import type { AlertKind } from "../alert";
import type { AlertWebhook } from "./alert-webhook";
import { RefusedWebhookUrl, type WebhookUrlGuard } from "./url-guard";

/** Far more than a tenant has receivers; a bound on the fan-out of each alert. */
const MAX_WEBHOOKS_PER_TENANT = 20;

/** Tenants' alert webhooks, managed by their admins (CONTRACT §6.4). */
export class AlertWebhookService {
  constructor(
    private readonly webhooks: AlertWebhookRepository,
    private readonly deliveries: AlertDeliveryRepository,
    private readonly guard: WebhookUrlGuard,
    private readonly clock: Clock,
  ) {}

  /** The secret is in the answer only; the store keeps it to sign deliveries and never returns it. */
  async create(principal: Principal, request: { url: string; kinds?: AlertKind[] | null }): Promise<{ webhook: AlertWebhook; secret: string }> {
    if (!allows(abilityOf(principal), "create", "AlertWebhook", { tenant: principal.tenant })) throw forbidden("Only an admin may create alert webhooks");
    const url = await this.checkedUrl(request.url);
    if (request.kinds && request.kinds.length === 0) throw badInput("kinds must list at least one alert kind, or be null for all", { field: "kinds" });
    if ((await this.webhooks.countForTenant(principal.tenant)) >= MAX_WEBHOOKS_PER_TENANT) {
      throw badInput(`A tenant may have at most ${MAX_WEBHOOKS_PER_TENANT} alert webhooks; delete one first`, { field: "url" });
    }
    const secret = `whsec_${randomBytes(32).toString("base64url")}`;
    const webhook: AlertWebhook = {
      id: randomUUID(),
      tenant: principal.tenant,
      url: url.toString(),
      kinds: request.kinds ? [...new Set(request.kinds)] : undefined,
      secret,
      createdBy: principal.id,
      createdAt: this.clock.now(),
      failing: false,
    };
    await this.webhooks.insert(webhook);
    return { webhook, secret };
  }

  /** Its pending deliveries go with it. Another tenant's webhook is NOT_FOUND, like a missing one. */
  async delete(principal: Principal, id: string): Promise<boolean> {
    const scope = accessibleFilter(abilityOf(principal), "delete", "AlertWebhook");
    if (!scope) throw forbidden("Only an admin may delete alert webhooks");
    if (!(await this.webhooks.delete(id, scope))) throw notFound("Alert webhook", id);
    await this.deliveries.deleteForWebhook(id);
    return true;
  }

  async list(principal: Principal): Promise<AlertWebhookView[]> {
    const scope = accessibleFilter(abilityOf(principal), "read", "AlertWebhook");
    if (!scope) throw forbidden("Only an admin may list alert webhooks");
    return this.webhooks.list(scope, MAX_WEBHOOKS_PER_TENANT);
  }

  private async checkedUrl(raw: string): Promise<URL> {
    try {
      const url = this.guard.parse(raw);
      await this.guard.check(url);
      return url;
    } catch (error) {
      if (error instanceof RefusedWebhookUrl) throw badInput(error.message, { field: "url" });
      throw error;
    }
  }
}
