import { Arg, Ctx, Int, Query, Resolver, Root, Subscription, type SubscriptionHandlerData } from "type-graphql";
import type { Alert } from "../../src/alerts/alert";
import type { AlertService } from "../../src/alerts/alert-service";
import { abilityOf, allows } from "../../src/authz/ability";
import { Topic } from "../../src/events/pubsub";
import { toConnection } from "../common/relay";
import type { GatewayContext } from "../context.type";
import { AlertConnection, AlertType } from "./alert.type";

/** Per event: only alerts the subscriber may read. */
function alertRaisedFilter({ payload, context }: SubscriptionHandlerData<Alert, object, GatewayContext>): boolean {
  return allows(abilityOf(context.principal), "read", "Alert", payload);
}

@Resolver(() => AlertType)
export class AlertResolver {
  constructor(private readonly alertService: AlertService) {}

  @Query(() => AlertConnection, { description: "Newest first; open: true only unresolved, false only resolved" })
  async alerts(
    @Ctx() { principal }: GatewayContext,
    @Arg("open", () => Boolean, { nullable: true }) open: boolean | null,
    @Arg("first", () => Int, { nullable: true, defaultValue: 50 }) first: number | null,
    @Arg("after", () => String, { nullable: true }) after: string | null,
  ) {
    return toConnection(await this.alertService.list(principal, { open, first, after }));
  }

  @Subscription(() => AlertType, { topics: Topic.AlertRaised, filter: alertRaisedFilter })
  alertRaised(@Root() alert: Alert): Alert {
    return alert;
  }
}
