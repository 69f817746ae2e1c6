import { Arg, Ctx, ID, Mutation, Query, Resolver } from "type-graphql";
import type { PayloadLimitService } from "../../src/payload-limits/payload-limit-service";
import type { GatewayContext } from "../context.type";
import { PayloadLimitInput } from "./payload-limit.input";
import { PayloadLimitType } from "./payload-limit.type";

@Resolver(() => PayloadLimitType)
export class PayloadLimitResolver {
  constructor(private readonly payloadLimitService: PayloadLimitService) {}

  @Query(() => [PayloadLimitType], { description: "Admin: the tenant's payload limits" })
  payloadLimits(@Ctx() { principal }: GatewayContext) {
    return this.payloadLimitService.list(principal);
  }

  @Mutation(() => PayloadLimitType, { description: "Admin; one per (subject, site, commandType), replaced on set" })
  setPayloadLimit(@Ctx() { principal }: GatewayContext, @Arg("input") input: PayloadLimitInput) {
    return this.payloadLimitService.set(principal, input);
  }

  @Mutation(() => Boolean, { description: "Admin; NOT_FOUND when the tenant has no such limit" })
  deletePayloadLimit(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string) {
    return this.payloadLimitService.delete(principal, id);
  }
}
