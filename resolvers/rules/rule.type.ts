import { GraphQLJSON } from "graphql-scalars";
import { Field, ID, Int, ObjectType } from "type-graphql";

@ObjectType("AutomationRule")
export class AutomationRuleType {
  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;

  @Field()
  enabled!: boolean;

  @Field(() => String, { nullable: true })
  site?: string;

  @Field(() => String, { nullable: true })
  model?: string;

  @Field(() => ID, { nullable: true })
  deviceId?: string;

  @Field(() => GraphQLJSON, { description: "MongoDB-style query over the telemetry object" })
  when!: Record<string, unknown>;

  @Field()
  commandType!: string;

  @Field(() => GraphQLJSON)
  commandPayload!: Record<string, unknown>;

  @Field(() => ID, { nullable: true, description: "null: the device that sent the telemetry" })
  targetDeviceId?: string;

  @Field(() => Int)
  cooldownSeconds!: number;

  @Field(() => Date, { nullable: true, description: "When the rule last sent a command" })
  lastFiredAt?: Date;

  @Field(() => Int, { description: "Commands the rule has sent" })
  fireCount!: number;

  @Field(() => String, { nullable: true, description: "Why the latest firing sent nothing; null once one sends" })
  lastError?: string;
}
