import type { Principal } from "../src/authz/principal";

/** Per request (HTTP) or per connection (graphql-ws): who is asking. Services come through constructors. */
export interface GatewayContext {
  principal: Principal;
}
