import type { ReactNode } from "react";
import type { GatewayRequestError } from "../api/client";

/** What each contract error code means to an operator (§3). */
function explain(error: GatewayRequestError): string {
  switch (error.code) {
    case "UNAVAILABLE":
      return "The gateway's store or broker is unavailable right now. Nothing was changed; try again in a moment.";
    case "RATE_LIMITED":
      return `Too many requests. Wait${error.retryAfterSeconds ? ` ${error.retryAfterSeconds} s` : " a moment"} and try again.`;
    case "FORBIDDEN":
      return "You are not allowed to do this.";
    case "NOT_FOUND":
      return "Not found, or not visible to you.";
    case "CONFLICT":
      return "The command's state does not allow this (it may have just changed).";
    case "BAD_USER_INPUT":
      return "The gateway refused the input.";
    case "UNAUTHENTICATED":
      return "Your session is no longer valid.";
    default:
      return "Something went wrong.";
  }
}

export function ErrorMessage({ error, onRetry }: { error: GatewayRequestError; onRetry?: () => void }) {
  return (
    <div className="message error" role="alert" data-code={error.code}>
      <strong>{explain(error)}</strong> <span className="detail">({error.code}: {error.message})</span>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="message loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="message empty">{children}</p>;
}
