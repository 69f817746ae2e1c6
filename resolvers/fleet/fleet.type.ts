import { GraphQLJSON } from "graphql-scalars";
import { Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import type { CommandStatus } from "../../src/commands/command";
import { FLEET_STATUSES, type FleetCommandStatus } from "../../src/fleet/fleet-command";
import { FLEET_ACTIONS } from "../../src/fleet/fleet-service";
import { CommandStatusEnum } from "../commands/command.type";
import { asEnum } from "../common/enums";
import { ConnectionType } from "../common/relay";

export const FleetCommandStatusEnum = asEnum(FLEET_STATUSES);
registerEnumType(FleetCommandStatusEnum, { name: "FleetCommandStatus" });
export const FleetCommandActionEnum = asEnum(FLEET_ACTIONS);
registerEnumType(FleetCommandActionEnum, { name: "FleetCommandAction", description: "pauseFleetCommand, resumeFleetCommand, cancelFleetCommand" });

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

  @Field(() => Int, {
    name: "version",
    description: "Grows with every stored change (a status change always stores one); progress between stores keeps it (beyond the contract: orders updates that arrive out of order)",
  })
  v!: number;

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

@ObjectType("FleetTargetsPreview", { description: "What createFleetCommand would target now (beyond the contract: the console's preview)" })
export class FleetTargetsPreviewType {
  @Field(() => Int, { description: "Devices that match the target" })
  targeted!: number;

  @Field(() => Int, { description: "Matched and sendable by this caller: they would be sent the command" })
  sendable!: number;

  @Field(() => Int, { description: "Matched but not sendable by this caller (policy, model, limits)" })
  skipped!: number;

  @Field(() => [ID], { description: "The sendable devices, in rollout order (at most 1000)" })
  deviceIds!: string[];

  @Field(() => [SkippedDeviceType], { description: "The skipped devices with their reasons (at most 1000)" })
  skippedDevices!: SkippedDeviceType[];
}
