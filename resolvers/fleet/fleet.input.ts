import { GraphQLJSON } from "graphql-scalars";
import { Field, Float, ID, InputType, Int } from "type-graphql";

@InputType({ description: "All given fields must match" })
export class FleetTargetInput {
  @Field(() => String, { nullable: true })
  site?: string | null;

  @Field(() => String, { nullable: true })
  model?: string | null;

  @Field(() => [ID], { nullable: true })
  deviceIds?: string[] | null;
}

@InputType()
export class RolloutInput {
  @Field(() => Int, { description: "1..100000 child commands started per minute" })
  maxPerMinute!: number;
}

@InputType()
export class AbortInput {
  @Field(() => Float)
  failurePercent!: number;

  @Field(() => Int)
  minCompleted!: number;
}

@InputType()
export class FleetCommandInput {
  @Field()
  name!: string;

  @Field(() => FleetTargetInput)
  target!: FleetTargetInput;

  @Field()
  type!: string;

  @Field(() => GraphQLJSON, { nullable: true })
  payload?: unknown;

  @Field(() => Int, { nullable: true })
  timeoutSeconds?: number | null;

  @Field(() => Int, { nullable: true })
  expiresInSeconds?: number | null;

  @Field(() => Date, { nullable: true })
  startAt?: Date | null;

  @Field(() => RolloutInput, { nullable: true })
  rollout?: RolloutInput | null;

  @Field(() => AbortInput, { nullable: true })
  abort?: AbortInput | null;

  @Field(() => String, { nullable: true })
  idempotencyKey?: string | null;
}
