import { Arg, Ctx, ID, Int, Mutation, Query, Resolver } from "type-graphql";
import type { DeviceService } from "../../src/devices/device-service";
import { toConnection } from "../common/relay";
import type { GatewayContext } from "../context.type";
import { RegisterDeviceInput } from "./device.input";
import { DeviceConnection, DeviceType } from "./device.type";

@Resolver(() => DeviceType)
export class DeviceResolver {
  constructor(private readonly deviceService: DeviceService) {}

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
}
