import { Field, ID, ObjectType } from "type-graphql";
import type { AlertKind } from "../../src/alerts/alert";
import { AlertKindEnum } from "./alert.type";

@ObjectType("AlertWebhook", { description: "An endpoint the tenant's alerts are POSTed to, signed with its secret (not shown again)" })
export class AlertWebhookType {
  @Field(() => ID)
  id!: string;

  @Field()
  url!: string;

  @Field(() => [AlertKindEnum], { description: "The kinds delivered; every kind when created with kinds null" })
  kinds!: AlertKind[];

  @Field()
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  lastDeliveredAt?: Date;

  @Field({ description: "A delivery gave up after retrying for the whole window; cleared by the next success" })
  failing!: boolean;
}

@ObjectType("AlertWebhookCreated", { description: "The secret is in this answer only" })
export class AlertWebhookCreatedType {
  @Field(() => ID)
  id!: string;

  @Field()
  secret!: string;
}
