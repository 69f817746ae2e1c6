import { createRemoteJWKSet, jwtVerify, SignJWT, type JWTVerifyGetKey } from "jose";
import { z } from "zod";
import { ROLES, type Principal } from "../authz/principal";
import { unauthenticated } from "../errors";

export type JwtSettings =
  | { kind: "secret"; secret: string; issuer?: string; audience?: string }
  | { kind: "jwks"; url: string; issuer?: string; audience?: string };

const claimsSchema = z.object({
  sub: z.string().min(1).max(200),
  tenant: z.string().min(1).max(100),
  roles: z.array(z.enum(ROLES)).min(1),
  sites: z.array(z.string().min(1).max(100)).max(1000).optional(),
});

const ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
const CLOCK_TOLERANCE_SECONDS = 30;

/** Verifies bearer tokens (jose): the algorithm is pinned by configuration, never taken from the token. */
export class JwtVerifier {
  private readonly key: Uint8Array | JWTVerifyGetKey;
  private readonly algorithms: string[];

  constructor(private readonly settings: JwtSettings) {
    if (settings.kind === "secret") {
      this.key = new TextEncoder().encode(settings.secret);
      this.algorithms = ["HS256"];
    } else {
      this.key = createRemoteJWKSet(new URL(settings.url));
      this.algorithms = ASYMMETRIC;
    }
  }

  async verify(token: string): Promise<Principal> {
    let payload: unknown;
    try {
      const options = {
        algorithms: this.algorithms,
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ["exp"],
      };
      payload = (
        typeof this.key === "function" ? await jwtVerify(token, this.key, options) : await jwtVerify(token, this.key, options)
      ).payload;
    } catch {
      throw unauthenticated("Invalid or expired token");
    }
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) throw unauthenticated("Token lacks valid sub, tenant or roles claims");
    const { sub, tenant, roles, sites } = claims.data;
    const expiresAt = ((payload as { exp: number }).exp + CLOCK_TOLERANCE_SECONDS) * 1000;
    return { kind: "user", id: sub, tenant, roles, ...(sites ? { sites } : {}), expiresAt };
  }
}

export interface TokenClaims {
  sub: string;
  tenant: string;
  roles: string[];
  sites?: string[];
}

/** Signs an HS256 token: for the demo tokens printed at start-up and for tests. */
export async function signToken(secret: string, claims: TokenClaims, expiresIn = "12h"): Promise<string> {
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}
