import { GraphQLError, type GraphQLFormattedError } from "graphql";
import type { Logger } from "../logger";
import { isStoreUnavailableError } from "../store/database";

/** Codes whose messages are written for callers; anything else is an internal failure. */
const PUBLIC_CODES = new Set([
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "BAD_USER_INPUT",
  "NOT_FOUND",
  "CONFLICT",
  "RATE_LIMITED",
  "UNAVAILABLE",
  "GRAPHQL_PARSE_FAILED",
  "GRAPHQL_VALIDATION_FAILED",
  "BAD_REQUEST",
  "PERSISTED_QUERY_NOT_FOUND",
  "PERSISTED_QUERY_NOT_SUPPORTED",
  "OPERATION_RESOLUTION_FAILURE",
]);

/** Internal errors never reach callers with their message or stack: they are logged and masked. */
export function createFormatError(log: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const code = String(formatted.extensions?.code ?? "INTERNAL_SERVER_ERROR");
    if (PUBLIC_CODES.has(code)) {
      // `http` is Apollo's (it strips it for HTTP); graphql-ws results would carry it.
      const { stacktrace: _stack, http: _http, ...extensions } = formatted.extensions ?? {};
      return { ...formatted, extensions: { ...extensions, code } };
    }
    // Apollo's own refusals of a request (an APQ hash that does not match its query, an unknown APQ
    // version) come with an HTTP 4xx status and no code: they are the caller's errors, not ours.
    const status = (error as { extensions?: { http?: { status?: unknown } } }).extensions?.http?.status;
    if (error instanceof GraphQLError && !error.originalError && typeof status === "number" && status >= 400 && status < 500) {
      return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions: { code: "BAD_REQUEST" } };
    }
    const original = (error as { originalError?: unknown }).originalError ?? error;
    if (isStoreUnavailableError(original)) {
      log.warn({ err: (original as Error).message, path: formatted.path }, "store unavailable");
      return { message: "The store is unavailable; try again", path: formatted.path, locations: formatted.locations, extensions: { code: "UNAVAILABLE" } };
    }
    log.error({ err: error, path: formatted.path }, "internal error");
    return { message: "Internal server error", path: formatted.path, locations: formatted.locations, extensions: { code: "INTERNAL_SERVER_ERROR" } };
  };
}
