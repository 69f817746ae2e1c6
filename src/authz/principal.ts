/** Who is asking (CONTRACT §2): a user with a JWT, a partner system with an API key, or an automation rule. */
export const ROLES = ["admin", "operator", "viewer"] as const;
export type Role = (typeof ROLES)[number];

export type Principal =
  | {
      kind: "user";
      id: string;
      tenant: string;
      roles: Role[];
      /** absent: every site of the tenant */
      sites?: string[];
      /** Epoch ms after which the token is no longer accepted: a WebSocket opened with it is closed then. */
      expiresAt?: number;
    }
  | { kind: "apiKey"; id: string; tenant: string; commandTypes: string[] }
  | { kind: "rule"; id: `rule:${string}`; tenant: string; commandType: string };

export function sourceOf(principal: Principal): "OPERATOR" | "API" | "AUTOMATION" {
  switch (principal.kind) {
    case "user":
      return "OPERATOR";
    case "apiKey":
      return "API";
    case "rule":
      return "AUTOMATION";
  }
}

/**
 * Two principals with the same key are allowed the same and see the same: every field but when the
 * token expires (which only closes a connection), e.g. two connections of one user with one or two tokens.
 */
export function principalKey(principal: Principal): string {
  const { expiresAt: _expiresAt, ...rest } = principal as Principal & { expiresAt?: number };
  return JSON.stringify(rest);
}
