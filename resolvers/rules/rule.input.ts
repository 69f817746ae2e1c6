import { GraphQLJSON } from "graphql-scalars";
import { Field, ID, InputType, Int } from "type-graphql";

@InputType()
export class RuleInput {
  @Field()
  name!: string;

  @Field(() => String, { nullable: true })
  site?: string | null;

  @Field(() => String, { nullable: true })
  model?: string | null;

  @Field(() => ID, { nullable: true })
  deviceId?: string | null;

  @Field(() => GraphQLJSON, { description: 'MongoDB-style query over the telemetry object, e.g. {"temperature": {"$gt": 30}}' })
  when!: unknown;

  @Field()
  commandType!: string;

  @Field(() => GraphQLJSON, { nullable: true, description: "Validated against the type's payloadSchema" })
  commandPayload?: unknown;

  @Field(() => ID, { nullable: true, description: "null: the device that sent the telemetry" })
  targetDeviceId?: string | null;

  @Field(() => Int, { nullable: true, defaultValue: 60 })
  cooldownSeconds?: number | null;
}
