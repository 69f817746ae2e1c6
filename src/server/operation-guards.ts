import { GraphQLError, type OperationTypeNode } from "graphql";

/**
 * Refusals that do not depend on the operation's fields, applied alike over HTTP (an Apollo plugin) and
 * WebSocket (graphql-ws `onSubscribe`), before anything executes.
 */
export function refuseOperation(
  operation: OperationTypeNode | undefined,
  transport: "http" | "ws",
  isStoreAvailable: () => boolean,
): GraphQLError | undefined {
  // Apollo would run a subscription's resolver once, without an event; graphql-ws is where they are served.
  if (operation === "subscription" && transport === "http") {
    return new GraphQLError("Subscriptions are served over WebSocket (graphql-ws, subprotocol graphql-transport-ws) on /graphql", {
      extensions: { code: "BAD_REQUEST", http: { status: 400 } },
    });
  }
  // Refused at once rather than left to wait for the driver's server selection (seconds) and fail.
  if (operation === "mutation" && !isStoreAvailable()) {
    return new GraphQLError("The store is unavailable; try again", { extensions: { code: "UNAVAILABLE", http: { status: 503 } } });
  }
  return undefined;
}
