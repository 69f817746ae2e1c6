import { Field, ID, ObjectType } from "type-graphql";

@ObjectType("ApiKeyCreated", { description: "The key is shown here only; the gateway stores its hash" })
export class ApiKeyCreatedType {
  @Field(() => ID)
  id!: string;

  @Field()
  key!: string;
}

@ObjectType("ApiKey", { description: "A partner system's key, without the key" })
export class ApiKeyType {
  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;

  @Field(() => [String])
  commandTypes!: string[];

  @Field()
  createdBy!: string;

  @Field()
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  revokedAt?: Date;
}
