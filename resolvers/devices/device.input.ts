import { Field, ID, InputType } from "type-graphql";

@InputType()
export class RegisterDeviceInput {
  @Field(() => ID)
  id!: string;

  @Field()
  site!: string;

  @Field()
  model!: string;
}
