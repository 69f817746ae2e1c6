/** The contract's error codes (CONTRACT §3). Every refusal the gateway makes is one of these. */
export type ErrorCode = "UNAUTHENTICATED" | "FORBIDDEN" | "BAD_USER_INPUT" | "NOT_FOUND" | "CONFLICT" | "RATE_LIMITED" | "UNAVAILABLE";

/** A refusal meant for the caller: its message is safe to show, its code maps to `extensions.code`. */
export class GatewayError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "GatewayError";
  }
}

export const unauthenticated = (message = "Authentication required") => new GatewayError("UNAUTHENTICATED", message);
/** `pointer`, when given, is a JSON pointer at the value a policy refused (a payload limit). */
export const forbidden = (message = "Not allowed", details: { field?: string; pointer?: string } = {}) => new GatewayError("FORBIDDEN", message, details);
export const notFound = (what: string, id: string) => new GatewayError("NOT_FOUND", `${what} ${JSON.stringify(id)} not found`);
export const conflict = (message: string, details: Record<string, unknown> = {}) => new GatewayError("CONFLICT", message, details);
/** `field` names an argument; `pointer` is a JSON pointer into a JSON payload (RFC 6901). */
export const badInput = (message: string, where: { field?: string; pointer?: string } = {}) => new GatewayError("BAD_USER_INPUT", message, where);
/** `retryAfterSeconds`: when trying again may succeed. */
export const rateLimited = (message: string, retryAfterSeconds: number, details: Record<string, unknown> = {}) =>
  new GatewayError("RATE_LIMITED", message, { retryAfterSeconds, ...details });
export const unavailable = (message = "The store or the broker is unavailable; try again") => new GatewayError("UNAVAILABLE", message);
