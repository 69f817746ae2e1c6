import { GraphQLJSON } from "graphql-scalars";
import { Field, ID, ObjectType } from "type-graphql";

@ObjectType("PayloadLimit")
export class PayloadLimitType {
  @Field(() => ID)
  id!: string;

  @Field({ description: '"role:<role>", "apikey:<id>" or "rule:<id>"' })
  subject!: string;

  @Field(() => String, { nullable: true, description: "null: every site of the tenant" })
  site?: string;

  @Field()
  commandType!: string;

  @Field(() => GraphQLJSON, { description: "A JSON Schema the payload must also satisfy" })
  schema!: Record<string, unknown>;
}
