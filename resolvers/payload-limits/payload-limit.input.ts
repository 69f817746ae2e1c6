import { GraphQLJSON } from "graphql-scalars";
import { Field, InputType } from "type-graphql";

@InputType()
export class PayloadLimitInput {
  @Field({ description: '"role:operator", "role:viewer", "role:admin", "apikey:<id>" or "rule:<id>"' })
  subject!: string;

  @Field(() => String, { nullable: true, description: "null: every site of the tenant" })
  site?: string | null;

  @Field()
  commandType!: string;

  @Field(() => GraphQLJSON, { description: 'A JSON Schema the payload must also satisfy, e.g. {"properties":{"celsius":{"minimum":18,"maximum":24}}}' })
  schema!: unknown;
}
