import { GraphQLJSON } from "graphql-scalars";
import { Arg, Ctx, FieldResolver, Query, Resolver, Root } from "type-graphql";
import type { CommandCatalog } from "../../src/catalog/catalog";
import type { CommandTypeDefinition } from "../../src/catalog/command-types";
import type { PayloadLimits } from "../../src/payload-limits/payload-limits";
import type { GatewayContext } from "../context.type";
import { CommandTypeDescription } from "./command-type.type";

@Resolver(() => CommandTypeDescription)
export class CommandTypeResolver {
  constructor(
    private readonly catalog: CommandCatalog,
    private readonly payloadLimits: PayloadLimits,
  ) {}

  @Query(() => [CommandTypeDescription])
  commandTypes() {
    return this.catalog.list();
  }

  @FieldResolver(() => GraphQLJSON, {
    description: "payloadSchema narrowed by the caller's payload limits: those for every site, and those for site when given",
  })
  effectivePayloadSchema(
    @Root() definition: CommandTypeDefinition,
    @Ctx() { principal }: GatewayContext,
    @Arg("site", () => String, { nullable: true }) site: string | null,
  ) {
    return this.payloadLimits.effectiveSchema(principal, definition, site ?? undefined);
  }
}
