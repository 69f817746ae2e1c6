import { GraphQLError } from "graphql";
import type { MiddlewareFn } from "type-graphql";
import { GatewayError } from "../src/errors";

/** The one place where the gateway's typed errors become GraphQL errors with `extensions.code`. */
export function toGraphQLError(error: GatewayError): GraphQLError {
  return new GraphQLError(error.message, { extensions: { code: error.code, ...error.details } });
}

/** Resolver middleware: the same mapping for queries, mutations and subscriptions. */
export const mapGatewayErrors: MiddlewareFn = async (_data, next) => {
  try {
    return await next();
  } catch (error) {
    throw error instanceof GatewayError ? toGraphQLError(error) : error;
  }
};
