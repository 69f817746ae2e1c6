import { GraphQLJSON } from "graphql-scalars";
import { Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import type { CommandStatus } from "../../src/commands/command";
import { FLEET_STATUSES, type FleetCommandStatus } from "../../src/fleet/fleet-command";
import { CommandStatusEnum } from "../commands/command.type";
import { asEnum } from "../common/enums";
import { ConnectionType } from "../common/relay";

export const FleetCommandStatusEnum = asEnum(FLEET_STATUSES);
registerEnumType(FleetCommandStatusEnum, { name: "FleetCommandStatus" });

@ObjectType("StatusCount")
export class StatusCountType {
  @Field(() => CommandStatusEnum)
  status!: CommandStatus;

  @Field(() => Int)
  count!: number;
}

@ObjectType("SkippedDevice")
export class SkippedDeviceType {
  @Field(() => ID)
  deviceId!: string;

  @Field({ description: "Why it is not sent the command, e.g. `FORBIDDEN: …`, `MODEL: …`, `PAYLOAD_LIMIT: …`" })
  reason!: string;
}

@ObjectType("FleetCommand")
export class FleetCommandType {
  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;

  @Field()
  type!: string;

  @Field(() => GraphQLJSON)
  payload!: Record<string, unknown>;

  @Field(() => GraphQLJSON)
  target!: Record<string, unknown>;

  @Field(() => FleetCommandStatusEnum)
  status!: FleetCommandStatus;

  @Field()
  createdBy!: string;

  @Field()
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  startAt?: Date;

  @Field(() => Date, { nullable: true })
  startedAt?: Date;

  @Field(() => Date, { nullable: true })
  finishedAt?: Date;

  @Field(() => Int, { description: "Devices that matched the target" })
  targeted!: number;

  @Field(() => Int, { description: "Matched but not sendable by this caller (policy, model, limits), never sent" })
  skipped!: number;

  @Field(() => [StatusCountType], { description: "The children by status" })
  counts!: StatusCountType[];

  @Field(() => String, { nullable: true })
  abortReason?: string;
}

@ObjectType()
export class FleetCommandConnection extends ConnectionType("FleetCommand", FleetCommandType) {}
