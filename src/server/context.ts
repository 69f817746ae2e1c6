import { GraphQLError } from "graphql";
import type { Authenticator, Credentials } from "../auth/authenticator";
import type { Principal } from "../authz/principal";
import { GatewayError } from "../errors";

/** Credentials from HTTP headers. */
export function credentialsFromHeaders(headers: Record<string, string | string[] | undefined>): Credentials {
  const header = (name: string) => {
    const value = headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  return { authorization: header("authorization"), apiKey: header("x-api-key") };
}

/** Credentials from the graphql-ws `connection_init` payload: `{ authorization }` or `{ apiKey }`. */
export function credentialsFromConnectionParams(params: Record<string, unknown> | undefined): Credentials {
  const text = (value: unknown) => (typeof value === "string" ? value : undefined);
  return { authorization: text(params?.authorization ?? params?.Authorization), apiKey: text(params?.apiKey) };
}

/** Authenticates an HTTP request; a refusal is a 401 (a revoked API key: 403) with the contract's code. */
export async function principalForRequest(authenticator: Authenticator, credentials: Credentials): Promise<Principal> {
  try {
    return await authenticator.authenticate(credentials);
  } catch (error) {
    if (error instanceof GatewayError) {
      throw new GraphQLError(error.message, { extensions: { code: error.code, http: { status: error.code === "FORBIDDEN" ? 403 : 401 } } });
    }
    throw error;
  }
}
