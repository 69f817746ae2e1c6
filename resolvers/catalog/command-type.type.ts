import { GraphQLJSON } from "graphql-scalars";
import { Field, Int, ObjectType } from "type-graphql";

@ObjectType("CommandType")
export class CommandTypeDescription {
  @Field()
  name!: string;

  @Field()
  description!: string;

  @Field(() => GraphQLJSON)
  payloadSchema!: Record<string, unknown>;

  @Field(() => Int)
  defaultTimeoutSeconds!: number;

  @Field(() => [String], { description: "Device models that accept it; '*' means every model" })
  models!: string[];

  @Field({ description: "A newer command of this type replaces older ones still QUEUED for the same device" })
  supersedes!: boolean;
}
