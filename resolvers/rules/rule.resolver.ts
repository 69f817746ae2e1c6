import { Arg, Ctx, ID, Mutation, Query, Resolver } from "type-graphql";
import type { RuleService } from "../../src/automation/rule-service";
import type { GatewayContext } from "../context.type";
import { RuleInput } from "./rule.input";
import { AutomationRuleType } from "./rule.type";

@Resolver(() => AutomationRuleType)
export class RuleResolver {
  constructor(private readonly ruleService: RuleService) {}

  @Query(() => [AutomationRuleType], { description: "The tenant's rules, oldest first" })
  rules(@Ctx() { principal }: GatewayContext) {
    return this.ruleService.list(principal);
  }

  @Mutation(() => AutomationRuleType, { description: "Admin only" })
  createRule(@Ctx() { principal }: GatewayContext, @Arg("input") input: RuleInput) {
    return this.ruleService.create(principal, input);
  }

  @Mutation(() => AutomationRuleType, { description: "Admin only" })
  setRuleEnabled(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string, @Arg("enabled") enabled: boolean) {
    return this.ruleService.setEnabled(principal, id, enabled);
  }

  @Mutation(() => Boolean, { description: "Admin only; NOT_FOUND when the tenant has no such rule" })
  deleteRule(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string) {
    return this.ruleService.delete(principal, id);
  }
}
