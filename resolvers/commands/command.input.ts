import { GraphQLJSON } from "graphql-scalars";
import { Field, ID, InputType, Int } from "type-graphql";
import type { CommandSource, CommandStatus } from "../../src/commands/command";
import { CommandSourceEnum, CommandStatusEnum } from "./command.type";

@InputType()
export class SendCommandInput {
  @Field(() => ID)
  deviceId!: string;

  @Field()
  type!: string;

  @Field(() => GraphQLJSON, { nullable: true, description: "Validated against the type's payloadSchema" })
  payload?: unknown;

  @Field(() => Int, { nullable: true, description: "Default: the type's defaultTimeoutSeconds" })
  timeoutSeconds?: number | null;

  @Field(() => Int, { nullable: true, description: "Default: the type's; null = never" })
  expiresInSeconds?: number | null;

  @Field(() => Date, { nullable: true, description: "Not sent before this time (at most 30 days ahead); expiresInSeconds counts from it" })
  notBefore?: Date | null;

  @Field(() => String, { nullable: true, description: "Same caller + same key + same input = the same command, never a second one" })
  idempotencyKey?: string | null;
}

@InputType()
export class CommandFilter {
  @Field(() => ID, { nullable: true })
  deviceId?: string | null;

  @Field(() => [CommandStatusEnum], { nullable: true })
  status?: CommandStatus[] | null;

  @Field(() => String, { nullable: true })
  type?: string | null;

  @Field(() => CommandSourceEnum, { nullable: true })
  source?: CommandSource | null;

  @Field(() => Date, { nullable: true })
  since?: Date | null;

  @Field(() => Date, { nullable: true })
  until?: Date | null;
}
