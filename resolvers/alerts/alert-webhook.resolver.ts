import { Arg, Ctx, ID, Mutation, Query, Resolver } from "type-graphql";
import { ALERT_KINDS, type AlertKind } from "../../src/alerts/alert";
import type { AlertWebhookService } from "../../src/alerts/webhooks/alert-webhook-service";
import type { AlertWebhookView } from "../../src/store/alert-webhook-repository";
import type { GatewayContext } from "../context.type";
import { AlertKindEnum } from "./alert.type";
import { AlertWebhookCreatedType, AlertWebhookType } from "./alert-webhook.type";

/** A webhook created with kinds null gets every kind, and says so. */
const toType = (webhook: AlertWebhookView): AlertWebhookType => ({ ...webhook, kinds: webhook.kinds ?? [...ALERT_KINDS] });

@Resolver()
export class AlertWebhookResolver {
  constructor(private readonly webhookService: AlertWebhookService) {}

  @Query(() => [AlertWebhookType], { description: "Admin: the tenant's alert webhooks, oldest first" })
  async alertWebhooks(@Ctx() { principal }: GatewayContext): Promise<AlertWebhookType[]> {
    return (await this.webhookService.list(principal)).map(toType);
  }

  @Mutation(() => AlertWebhookCreatedType, { description: "Admin; kinds null = all. The secret is in the answer only" })
  async createAlertWebhook(
    @Ctx() { principal }: GatewayContext,
    @Arg("url") url: string,
    @Arg("kinds", () => [AlertKindEnum], { nullable: true }) kinds: AlertKind[] | null,
  ): Promise<AlertWebhookCreatedType> {
    const { webhook, secret } = await this.webhookService.create(principal, { url, kinds });
    return { id: webhook.id, secret };
  }

  @Mutation(() => Boolean, { description: "Admin; NOT_FOUND when the tenant has no such webhook; its pending deliveries are dropped" })
  deleteAlertWebhook(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string): Promise<boolean> {
    return this.webhookService.delete(principal, id);
  }
}
