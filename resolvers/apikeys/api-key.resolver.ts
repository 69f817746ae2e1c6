import { Arg, Ctx, ID, Mutation, Query, Resolver } from "type-graphql";
import type { ApiKeyService } from "../../src/apikeys/api-key-service";
import type { GatewayContext } from "../context.type";
import { ApiKeyCreatedType, ApiKeyType } from "./api-key.type";

@Resolver()
export class ApiKeyResolver {
  constructor(private readonly apiKeyService: ApiKeyService) {}

  @Mutation(() => ApiKeyCreatedType, { description: "Admin; the key is in the answer only" })
  async createApiKey(
    @Ctx() { principal }: GatewayContext,
    @Arg("name") name: string,
    @Arg("commandTypes", () => [String]) commandTypes: string[],
  ): Promise<ApiKeyCreatedType> {
    const { apiKey, key } = await this.apiKeyService.create(principal, { name, commandTypes });
    return { id: apiKey.id, key };
  }

  @Mutation(() => Boolean, { description: "Admin, own tenant; requests and connections with the key are refused from then on" })
  revokeApiKey(@Ctx() { principal }: GatewayContext, @Arg("id", () => ID) id: string): Promise<boolean> {
    return this.apiKeyService.revoke(principal, id);
  }

  @Query(() => [ApiKeyType], { description: "Admin: the tenant's API keys, newest first" })
  apiKeys(@Ctx() { principal }: GatewayContext): Promise<ApiKeyType[]> {
    return this.apiKeyService.list(principal);
  }
}
