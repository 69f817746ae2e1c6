import { GraphQLJSON } from "graphql-scalars";
import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root, Subscription, type SubscriptionHandlerData } from "type-graphql";
import { abilityOf, allows } from "../../src/authz/ability";
import { COMMAND_STATUSES } from "../../src/commands/command";
import { Topic } from "../../src/events/pubsub";
import type { FleetCommand } from "../../src/fleet/fleet-command";
import type { FleetCommandService } from "../../src/fleet/fleet-service";
import { toConnection } from "../common/relay";
import type { GatewayContext } from "../context.type";
import { FleetCommandInput, FleetTargetInput } from "./fleet.input";
import { FleetCommandActionEnum, FleetCommandConnection, FleetCommandType, FleetTargetsPreviewType, SkippedDeviceType, StatusCountType } from "./fleet.type";

function fleetCommandUpdatedFilter({ payload, args, context }: SubscriptionHandlerData<FleetCommand, { id?: string | null }, GatewayContext>): boolean {
  if (args.id != null && payload.id !== args.id) return false;
  return allows(abilityOf(context.principal), "read", "FleetCommand", payload);
}

const targetOf = (target: FleetTargetInput) => ({ site: target.site ?? undefined, model: target.model ?? undefined, deviceIds: target.deviceIds ?? undefined });

@Resolver(() => FleetCommandType)
export class FleetCommandResolver {
  constructor(private readonly fleets: FleetCommandService) {}

  @Query(() => FleetCommandType, { nullable: true })
  fleetCommand(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string) {
    return this.fleets.get(principal, id);
  }

  @Query(() => FleetCommandConnection, { description: "Newest first" })
  async fleetCommands(
    @Ctx() { principal }: GatewayContext,
    @Arg("first", () => Int, { nullable: true, defaultValue: 50 }) first: number | null,
    @Arg("after", () => String, { nullable: true }) after: string | null,
  ) {
    return toConnection(await this.fleets.list(principal, { first, after }));
  }

  @Query(() => FleetTargetsPreviewType, {
    description: "A dry run of createFleetCommand's targeting, with the same rules: the devices it would send to and those it would skip, with reasons (beyond the contract)",
  })
  previewFleetTargets(
    @Ctx() { principal }: GatewayContext,
    @Arg("target", () => FleetTargetInput) target: FleetTargetInput,
    @Arg("type") type: string,
    @Arg("payload", () => GraphQLJSON, { nullable: true }) payload: unknown,
  ) {
    return this.fleets.preview(principal, { target: targetOf(target), type, payload: payload ?? undefined });
  }

  @Mutation(() => FleetCommandType)
  createFleetCommand(@Ctx() { principal, trace }: GatewayContext, @Arg("input") input: FleetCommandInput) {
    return this.fleets.create(principal, { ...input, target: targetOf(input.target) }, trace);
  }

  @Mutation(() => FleetCommandType, { description: "RUNNING → PAUSED: no new children start" })
  pauseFleetCommand(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string) {
    return this.fleets.pause(principal, id);
  }

  @Mutation(() => FleetCommandType, { description: "PAUSED → RUNNING" })
  resumeFleetCommand(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string) {
    return this.fleets.resume(principal, id);
  }

  @Mutation(() => FleetCommandType, { description: "SCHEDULED, RUNNING, PAUSED → CANCELED: children not yet started never start, QUEUED ones are CANCELED" })
  cancelFleetCommand(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string) {
    return this.fleets.cancel(principal, id);
  }

  @Subscription(() => FleetCommandType, { topics: Topic.FleetCommandUpdated, filter: fleetCommandUpdatedFilter, description: "At most a few events per second per fleet command" })
  fleetCommandUpdated(@Root() fleet: FleetCommand, @Arg("id", () => ID, { nullable: true }) _id: string | null): FleetCommand {
    return fleet;
  }

  @FieldResolver(() => [FleetCommandActionEnum], {
    description: "The actions this caller may take now: its policy (operators their own, admins any) and the status (beyond the contract)",
  })
  allowedActions(@Root() fleet: FleetCommand, @Ctx() { principal }: GatewayContext) {
    return this.fleets.allowedActions(principal, fleet);
  }

  @FieldResolver(() => [StatusCountType])
  counts(@Root() fleet: FleetCommand): StatusCountType[] {
    return COMMAND_STATUSES.map((status) => ({ status, count: fleet.counts[status] ?? 0 }));
  }

  @FieldResolver(() => [SkippedDeviceType], { description: "The skipped devices with their reasons (beyond the contract: for previews and support)" })
  skippedDevices(@Root() fleet: FleetCommand): Promise<SkippedDeviceType[]> {
    return this.fleets.skippedDevices(fleet);
  }
}
