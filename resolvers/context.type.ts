import type { Principal } from "../src/authz/principal";
import type { TraceContext } from "../src/observability/tracing";

/** Per request (HTTP) or per connection (graphql-ws): who is asking. Services come through constructors. */
export interface GatewayContext {
  principal: Principal;
  /** The request's span (tracing on), handed to services whose work joins the caller's trace. */
  trace?: TraceContext;
}
