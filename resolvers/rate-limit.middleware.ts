import type { MiddlewareFn } from "type-graphql";
import type { TokenBuckets } from "../src/common/token-bucket";
import { rateLimited } from "../src/errors";
import type { GatewayContext } from "./context.type";

/**
 * Each top-level mutation field takes a token from its principal's bucket (so aliasing ten sends
 * costs ten), over HTTP and WebSocket alike; an empty bucket is RATE_LIMITED with `retryAfterSeconds`.
 */
export function rateLimitMutations(buckets: TokenBuckets): MiddlewareFn<GatewayContext> {
  return async ({ info, context }, next) => {
    if (info.operation.operation === "mutation" && info.path.prev === undefined) {
      const { principal } = context;
      const taken = buckets.take(`${principal.tenant}\u0000${principal.kind}\u0000${principal.id}`);
      if (!taken.allowed) {
        throw rateLimited(`Too many mutations; try again in ${taken.retryAfterSeconds} s`, taken.retryAfterSeconds);
      }
    }
    return next();
  };
}
