import "reflect-metadata";
import type { GraphQLSchema } from "graphql";
import { DateTimeResolver } from "graphql-scalars";
import { buildSchema, type ContainerType, type MiddlewareFn } from "type-graphql";
import type { GatewayPubSub } from "../src/events/pubsub";
import { AlertResolver } from "./alerts/alert.resolver";
import { AlertWebhookResolver } from "./alerts/alert-webhook.resolver";
import { ApiKeyResolver } from "./apikeys/api-key.resolver";
import { CommandTypeResolver } from "./catalog/command-type.resolver";
import { CommandResolver } from "./commands/command.resolver";
import { DeviceResolver } from "./devices/device.resolver";
import type { GatewayContext } from "./context.type";
import { mapGatewayErrors } from "./error-mapping";
import { FleetCommandResolver } from "./fleet/fleet.resolver";
import { PayloadLimitResolver } from "./payload-limits/payload-limit.resolver";
import { refuseHostileArguments } from "./input-shape.middleware";
import { RuleResolver } from "./rules/rule.resolver";

export const RESOLVERS = [
  CommandResolver,
  DeviceResolver,
  CommandTypeResolver,
  AlertResolver,
  AlertWebhookResolver,
  ApiKeyResolver,
  RuleResolver,
  PayloadLimitResolver,
  FleetCommandResolver,
] as const;

/** Resolver instances, built with their services in the composition root. */
export type ResolverInstances = Array<InstanceType<(typeof RESOLVERS)[number]>>;

export function buildGatewaySchema(options: {
  pubSub: GatewayPubSub;
  resolvers?: ResolverInstances;
  /** Run inside the error mapping, e.g. rate limits. */
  middlewares?: Array<MiddlewareFn<GatewayContext>>;
}): Promise<GraphQLSchema> {
  const instances = new Map<unknown, unknown>((options.resolvers ?? []).map((r) => [r.constructor, r]));
  const container: ContainerType = {
    get(someClass) {
      const instance = instances.get(someClass);
      if (!instance) throw new Error(`No instance of ${(someClass as { name?: string }).name} was provided`);
      return instance;
    },
  };
  return buildSchema({
    resolvers: RESOLVERS,
    container,
    pubSub: options.pubSub,
    scalarsMap: [{ type: Date, scalar: DateTimeResolver }],
    globalMiddlewares: [mapGatewayErrors, refuseHostileArguments, ...(options.middlewares ?? [])],
    validate: false,
    emitSchemaFile: false,
  });
}
