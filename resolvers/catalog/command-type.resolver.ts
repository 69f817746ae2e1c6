import { Query, Resolver } from "type-graphql";
import type { CommandCatalog } from "../../src/catalog/catalog";
import { CommandTypeDescription } from "./command-type.type";

@Resolver(() => CommandTypeDescription)
export class CommandTypeResolver {
  constructor(private readonly catalog: CommandCatalog) {}

  @Query(() => [CommandTypeDescription])
  commandTypes() {
    return this.catalog.list();
  }
}
