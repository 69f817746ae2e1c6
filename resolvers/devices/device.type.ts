import { Field, ID, ObjectType } from "type-graphql";
import { ConnectionType } from "../common/relay";

@ObjectType("Device")
export class DeviceType {
  @Field(() => ID)
  id!: string;

  @Field()
  tenant!: string;

  @Field()
  site!: string;

  @Field()
  model!: string;

  @Field()
  online!: boolean;

  @Field(() => Date, { nullable: true })
  lastSeenAt?: Date;

  @Field(() => Date, { nullable: true, description: "When reported last changed" })
  stateUpdatedAt?: Date;
}

@ObjectType()
export class DeviceConnection extends ConnectionType("Device", DeviceType) {}
