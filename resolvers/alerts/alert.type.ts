import { Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import { ALERT_KINDS, type AlertKind } from "../../src/alerts/alert";
import { asEnum } from "../common/enums";
import { ConnectionType } from "../common/relay";

export const AlertKindEnum = asEnum(ALERT_KINDS);
registerEnumType(AlertKindEnum, { name: "AlertKind" });

@ObjectType("Alert")
export class AlertType {
  @Field(() => ID)
  id!: string;

  @Field(() => AlertKindEnum)
  kind!: AlertKind;

  @Field(() => ID)
  commandId!: string;

  @Field(() => ID)
  deviceId!: string;

  @Field(() => Int, { description: "0 unless escalated; an ESCALATED alert carries the new escalation level" })
  level!: number;

  @Field()
  raisedAt!: Date;

  @Field(() => Date, { nullable: true })
  resolvedAt?: Date;

  @Field()
  message!: string;
}

@ObjectType()
export class AlertConnection extends ConnectionType("Alert", AlertType) {}
