/**
 * The operator's credential, kept in sessionStorage (CONTRACT §6.1): a JWT or an API key. Closing the
 * tab or signing out forgets it; nothing is written to localStorage or cookies.
 */
const STORAGE_KEY = "iot-console.credential";

export interface Session {
  credential: string;
  kind: "jwt" | "apiKey";
  /** Who the token says it is, for the header; the gateway decides what they may do. */
  subject: string;
  roles: string[];
  tenant?: string;
  /** Milliseconds since the epoch; undefined for API keys and tokens without `exp`. */
  expiresAt?: number;
}

export class SignInError extends Error {}

interface JwtClaims {
  sub?: string;
  roles?: unknown;
  tenant?: string;
  exp?: number;
}

function decodeJwt(token: string): JwtClaims | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1]!.replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(json) as unknown;
    return claims && typeof claims === "object" ? (claims as JwtClaims) : null;
  } catch {
    return null;
  }
}

/** A JWT is three base64url parts whose middle one is a JSON object; anything else is taken as an API key. */
export function sessionFor(credential: string): Session {
  const trimmed = credential.trim();
  if (!trimmed) throw new SignInError("Paste a JWT or an API key.");
  const claims = decodeJwt(trimmed);
  if (!claims) return { credential: trimmed, kind: "apiKey", subject: "API key", roles: [] };
  const expiresAt = typeof claims.exp === "number" ? claims.exp * 1000 : undefined;
  if (expiresAt !== undefined && expiresAt <= Date.now()) throw new SignInError("This token has expired. Ask for a new one and sign in again.");
  const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === "string") : [];
  return { credential: trimmed, kind: "jwt", subject: claims.sub ?? "unknown", roles, tenant: claims.tenant, expiresAt };
}

export function storedSession(): Session | null {
  const credential = sessionStorage.getItem(STORAGE_KEY);
  if (!credential) return null;
  try {
    return sessionFor(credential);
  } catch {
    sessionStorage.removeItem(STORAGE_KEY);
    return null;
  }
}

export function rememberSession(session: Session): void {
  sessionStorage.setItem(STORAGE_KEY, session.credential);
}

export function forgetSession(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** `#token=…` in the address signs in directly; the fragment never reaches the server. */
export function takeTokenFromLocation(): string | null {
  const match = /^#token=([^&]+)/.exec(window.location.hash);
  if (!match) return null;
  history.replaceState(null, "", `${window.location.pathname}${window.location.search}#/commands`);
  return decodeURIComponent(match[1]!);
}

/** What this caller is likely allowed to do, for hiding controls; the gateway still checks every request. */
export function maySend(session: Session): boolean {
  return session.kind === "apiKey" || session.roles.includes("admin") || session.roles.includes("operator");
}

export function isAdmin(session: Session): boolean {
  return session.roles.includes("admin");
}
