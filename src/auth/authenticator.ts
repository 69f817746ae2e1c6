import type { Principal } from "../authz/principal";
import { unauthenticated } from "../errors";
import type { JwtVerifier } from "./jwt";

/** Credentials as they arrive: the HTTP headers, or the graphql-ws `connection_init` payload. */
export interface Credentials {
  authorization?: string;
  apiKey?: string;
}

export interface ApiKeyVerifier {
  verify(key: string): Promise<Principal | null>;
}

/** Turns credentials into a principal, the same way on HTTP and on WebSocket. Nothing is served without one. */
export class Authenticator {
  constructor(
    private readonly jwt: JwtVerifier,
    private readonly apiKeys?: ApiKeyVerifier,
  ) {}

  async authenticate(credentials: Credentials): Promise<Principal> {
    if (credentials.authorization !== undefined) {
      const match = /^Bearer ([A-Za-z0-9_.-]{1,8192})$/.exec(credentials.authorization.trim());
      if (!match) throw unauthenticated("Authorization must be 'Bearer <token>'");
      return this.jwt.verify(match[1]!);
    }
    if (credentials.apiKey !== undefined) {
      const principal = this.apiKeys && credentials.apiKey.length <= 200 ? await this.apiKeys.verify(credentials.apiKey) : null;
      if (!principal) throw unauthenticated("Invalid API key");
      return principal;
    }
    throw unauthenticated();
  }
}
