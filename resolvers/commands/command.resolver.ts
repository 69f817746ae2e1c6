import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root, Subscription, type SubscriptionHandlerData } from "type-graphql";
import { abilityOf, allows } from "../../src/authz/ability";
import type { Command } from "../../src/commands/command";
import type { CommandService } from "../../src/commands/command-service";
import type { DeviceService } from "../../src/devices/device-service";
import { Topic, type CommandUpdate } from "../../src/events/pubsub";
import { toConnection } from "../common/relay";
import type { GatewayContext } from "../context.type";
import { DeviceType } from "../devices/device.type";
import { CommandFilter, SendCommandInput } from "./command.input";
import { CommandActionEnum, CommandConnection, CommandType } from "./command.type";

interface CommandUpdatedArgs {
  id?: string | null;
  deviceId?: string | null;
}

/** Per event: what the subscriber asked for, and only what it may read. */
function commandUpdatedFilter({ payload, args, context }: SubscriptionHandlerData<CommandUpdate, CommandUpdatedArgs, GatewayContext>): boolean {
  if (args.id != null && payload.id !== args.id) return false;
  if (args.deviceId != null && payload.deviceId !== args.deviceId) return false;
  return allows(abilityOf(context.principal), "read", "Command", payload);
}

@Resolver(() => CommandType)
export class CommandResolver {
  constructor(
    private readonly commandService: CommandService,
    private readonly deviceService: DeviceService,
  ) {}

  @Query(() => CommandType, { nullable: true })
  command(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string) {
    return this.commandService.get(principal, id);
  }

  @Query(() => CommandConnection, { description: "Newest first" })
  async commands(
    @Ctx() { principal }: GatewayContext,
    @Arg("filter", () => CommandFilter, { nullable: true }) filter: CommandFilter | null,
    @Arg("first", () => Int, { nullable: true, defaultValue: 50 }) first: number | null,
    @Arg("after", () => String, { nullable: true }) after: string | null,
  ) {
    const page = await this.commandService.list(principal, {
      deviceId: filter?.deviceId ?? undefined,
      status: filter?.status ?? undefined,
      type: filter?.type ?? undefined,
      source: filter?.source ?? undefined,
      since: filter?.since ?? undefined,
      until: filter?.until ?? undefined,
      first,
      after,
    });
    return toConnection(page);
  }

  @Mutation(() => CommandType)
  sendCommand(@Ctx() { principal, trace }: GatewayContext, @Arg("input") input: SendCommandInput) {
    return this.commandService.send(principal, input, trace);
  }

  @Mutation(() => CommandType, { description: "From FAILED, TIMED_OUT, EXPIRED: back to QUEUED, same id, attempt + 1" })
  retryCommand(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string) {
    return this.commandService.retry(principal, id);
  }

  @Mutation(() => CommandType, { description: "From FAILED, TIMED_OUT, EXPIRED: escalation level + 1, an ESCALATED alert" })
  escalateCommand(
    @Ctx() { principal }: GatewayContext,
    @Arg("id", () => ID) id: string,
    @Arg("note", () => String, { nullable: true }) note: string | null,
  ) {
    return this.commandService.escalate(principal, id, note);
  }

  @Mutation(() => CommandType, { description: "From QUEUED only" })
  cancelCommand(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string) {
    return this.commandService.cancel(principal, id);
  }

  @Subscription(() => CommandType, {
    topics: Topic.CommandUpdated,
    filter: commandUpdatedFilter,
    description: "Every transition the caller may read",
  })
  commandUpdated(
    @Root() command: CommandUpdate,
    @Arg("id", () => ID, { nullable: true }) _id: string | null,
    @Arg("deviceId", () => ID, { nullable: true }) _deviceId: string | null,
  ): CommandUpdate {
    return command;
  }

  @FieldResolver(() => [CommandActionEnum])
  allowedActions(@Root() command: Command, @Ctx() { principal }: GatewayContext) {
    return this.commandService.allowedActions(principal, command);
  }

  @FieldResolver(() => DeviceType, { nullable: true })
  device(@Root() command: Command, @Ctx() { principal }: GatewayContext) {
    return this.deviceService.get(principal, command.deviceId);
  }
}
