import { GraphQLJSON } from "graphql-scalars";
import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root, Subscription, type SubscriptionHandlerData } from "type-graphql";
import { abilityOf, allows } from "../../src/authz/ability";
import type { Device, DeviceRef } from "../../src/devices/device";
import type { DeviceService } from "../../src/devices/device-service";
import type { DeviceStateService } from "../../src/devices/device-state-service";
import { Topic } from "../../src/events/pubsub";
import { toConnection } from "../common/relay";
import type { GatewayContext } from "../context.type";
import { RegisterDeviceInput } from "./device.input";
import { DeviceConnection, DeviceType } from "./device.type";

interface DeviceUpdatedArgs {
  id?: string | null;
  site?: string | null;
}

/** Per event: what the subscriber asked for, and only what it may read. */
function deviceUpdatedFilter({ payload, args, context }: SubscriptionHandlerData<DeviceRef, DeviceUpdatedArgs, GatewayContext>): boolean {
  if (args.id != null && payload.id !== args.id) return false;
  if (args.site != null && payload.site !== args.site) return false;
  return allows(abilityOf(context.principal), "read", "Device", payload);
}

@Resolver(() => DeviceType)
export class DeviceResolver {
  /** One read per event and replica, however many subscribers it reaches (the event object is shared). */
  private readonly delivered = new WeakMap<DeviceRef, Promise<Device | null>>();

  constructor(
    private readonly deviceService: DeviceService,
    private readonly deviceState: DeviceStateService,
  ) {}

  @Query(() => DeviceType, { nullable: true })
  device(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string) {
    return this.deviceService.get(principal, id);
  }

  @Query(() => DeviceConnection)
  async devices(
    @Ctx() { principal }: GatewayContext,
    @Arg("site", () => String, { nullable: true }) site: string | null,
    @Arg("first", () => Int, { nullable: true, defaultValue: 50 }) first: number | null,
    @Arg("after", () => String, { nullable: true }) after: string | null,
  ) {
    return toConnection(await this.deviceService.list(principal, { site, first, after }));
  }

  @Mutation(() => DeviceType)
  registerDevice(@Ctx() { principal }: GatewayContext, @Arg("input") input: RegisterDeviceInput) {
    return this.deviceService.register(principal, input);
  }

  @Subscription(() => DeviceType, {
    topics: Topic.DeviceUpdated,
    filter: deviceUpdatedFilter,
    description: "The device as it is now, whenever its presence, reported state or not-yet-final commands change",
  })
  async deviceUpdated(
    @Root() update: DeviceRef,
    @Arg("id", () => ID, { nullable: true }) _id: string | null,
    @Arg("site", () => String, { nullable: true }) _site: string | null,
  ): Promise<Device> {
    let device = this.delivered.get(update);
    if (!device) {
      device = this.deviceService.current(update.id);
      this.delivered.set(update, device);
    }
    const current = await device;
    if (!current) throw new Error(`device ${update.id} is gone`);
    return current;
  }

  @FieldResolver(() => GraphQLJSON, { description: "State the device reported: SUCCEEDED results' state fields and telemetry's state object, merged" })
  reported(@Root() device: Device) {
    return device.reported ?? {};
  }

  @FieldResolver(() => GraphQLJSON, { description: "State that accepted, not yet final, state-setting commands will set" })
  async desired(@Root() device: Device) {
    return (await this.deviceState.derive(device)).desired;
  }

  @FieldResolver(() => Boolean, { description: "Every desired key equals the reported one" })
  async inSync(@Root() device: Device) {
    return (await this.deviceState.derive(device)).inSync;
  }

  @FieldResolver(() => Int, { description: "Commands not yet final (QUEUED, SENT, DELIVERED)" })
  async pendingCommands(@Root() device: Device) {
    return (await this.deviceState.derive(device)).pendingCommands;
  }
}
