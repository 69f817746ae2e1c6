import { GraphQLJSON } from "graphql-scalars";
import { Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import { COMMAND_ACTIONS, type CommandAction } from "../../src/commands/allowed-actions";
import { COMMAND_SOURCES, COMMAND_STATUSES, type CommandSource, type CommandStatus } from "../../src/commands/command";
import { asEnum } from "../common/enums";
import { ConnectionType } from "../common/relay";
import { DeviceType } from "../devices/device.type";

export const CommandStatusEnum = asEnum(COMMAND_STATUSES);
export const CommandSourceEnum = asEnum(COMMAND_SOURCES);
registerEnumType(CommandStatusEnum, { name: "CommandStatus" });
registerEnumType(CommandSourceEnum, { name: "CommandSource" });
export const CommandActionEnum = asEnum(COMMAND_ACTIONS);
registerEnumType(CommandActionEnum, { name: "CommandAction" });

@ObjectType("CommandError")
export class CommandErrorType {
  @Field()
  code!: string;

  @Field(() => String, { nullable: true })
  message?: string;
}

@ObjectType("CommandEvent")
export class CommandEventType {
  @Field(() => CommandStatusEnum)
  status!: CommandStatus;

  @Field()
  at!: Date;

  @Field()
  actor!: string;

  @Field(() => String, { nullable: true })
  detail?: string;
}

@ObjectType("Escalation")
export class EscalationType {
  @Field(() => Int)
  level!: number;

  @Field()
  at!: Date;

  @Field()
  by!: string;

  @Field(() => String, { nullable: true })
  note?: string;
}

@ObjectType("Command")
export class CommandType {
  @Field(() => ID)
  id!: string;

  @Field(() => ID)
  deviceId!: string;

  @Field(() => DeviceType, { nullable: true, description: "Null when the caller may not read the device" })
  device?: DeviceType;

  @Field()
  type!: string;

  @Field(() => GraphQLJSON)
  payload!: Record<string, unknown>;

  @Field(() => CommandStatusEnum)
  status!: CommandStatus;

  @Field(() => CommandSourceEnum)
  source!: CommandSource;

  @Field({ description: "Principal id: user sub, API key id, or rule:<id>" })
  issuedBy!: string;

  @Field(() => String, { nullable: true })
  idempotencyKey?: string;

  @Field(() => Int, { description: "1, then +1 on each retry" })
  attempt!: number;

  @Field(() => Int)
  timeoutSeconds!: number;

  @Field(() => Date, { nullable: true, description: "When the sent attempt times out" })
  deadline?: Date;

  @Field(() => Date, { nullable: true, description: "Not sent before this time (a scheduled command)" })
  notBefore?: Date;

  @Field(() => Date, { nullable: true, description: "A command not yet sent by then expires" })
  expiresAt?: Date;

  @Field()
  createdAt!: Date;

  @Field()
  updatedAt!: Date;

  @Field(() => Date, { nullable: true })
  sentAt?: Date;

  @Field(() => Date, { nullable: true })
  deliveredAt?: Date;

  @Field(() => Date, { nullable: true })
  completedAt?: Date;

  @Field(() => GraphQLJSON, { nullable: true, description: "The device's new state on success" })
  result?: Record<string, unknown>;

  @Field(() => CommandErrorType, { nullable: true, description: "The device's error on failure" })
  error?: CommandErrorType;

  @Field(() => EscalationType, { nullable: true })
  escalation?: EscalationType;

  @Field(() => ID, { nullable: true, description: "Set on a command CANCELED because a newer one of a superseding type replaced it" })
  supersededBy?: string;

  @Field(() => [CommandEventType], { description: "Every transition, oldest first" })
  history!: CommandEventType[];

  @Field(() => [CommandActionEnum], { description: "What this caller may do to this command now (its state × the policy)" })
  allowedActions!: CommandAction[];

  @Field(() => ID, { nullable: true, description: "The fleet command it is a child of" })
  fleetCommandId?: string;
}

@ObjectType()
export class CommandConnection extends ConnectionType("Command", CommandType) {}
