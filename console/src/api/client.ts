import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print } from "graphql";
import { createClient, type Client } from "graphql-ws";
import type { Session } from "./session";

/** A refusal from the gateway, with the contract's code and where it points (§3). */
export class GatewayRequestError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly field?: string,
    readonly pointer?: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

interface GraphQLErrorShape {
  message: string;
  extensions?: { code?: string; field?: string; pointer?: string; retryAfterSeconds?: number };
}

function toRequestError(error: GraphQLErrorShape): GatewayRequestError {
  const ext = error.extensions ?? {};
  return new GatewayRequestError(error.message, ext.code ?? "INTERNAL_SERVER_ERROR", ext.field, ext.pointer, ext.retryAfterSeconds);
}

const WS_UNAUTHORIZED = 4401;
const WS_FORBIDDEN = 4403;

/**
 * The console's only way to the gateway: queries and mutations over HTTP, subscriptions over graphql-ws,
 * both on /graphql with the session's credential. An UNAUTHENTICATED answer (an expired or revoked
 * credential) ends the session through `onSignedOut`.
 */
export class GatewayClient {
  private readonly ws: Client;

  constructor(
    private readonly session: Session,
    private readonly onSignedOut: (reason: string) => void,
  ) {
    const auth = session.kind === "jwt" ? { authorization: `Bearer ${session.credential}` } : { apiKey: session.credential };
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
    this.ws = createClient({
      url,
      connectionParams: auth,
      lazy: true,
      retryAttempts: Infinity,
      shouldRetry: (event) => !isCloseEvent(event) || (event.code !== WS_UNAUTHORIZED && event.code !== WS_FORBIDDEN),
      on: {
        closed: (event) => {
          if (isCloseEvent(event) && event.code === WS_UNAUTHORIZED) this.onSignedOut("Your session has expired or the token is no longer accepted. Sign in again.");
          if (isCloseEvent(event) && event.code === WS_FORBIDDEN) this.onSignedOut("This credential is not allowed anything (revoked API key?). Sign in again.");
        },
      },
    });
  }

  private headers(): Record<string, string> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.session.kind === "jwt") headers.authorization = `Bearer ${this.session.credential}`;
    else headers["x-api-key"] = this.session.credential;
    return headers;
  }

  async request<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<R> {
    if (this.session.expiresAt !== undefined && this.session.expiresAt <= Date.now()) {
      this.onSignedOut("Your session has expired. Sign in again.");
      throw new GatewayRequestError("Your session has expired.", "UNAUTHENTICATED");
    }
    let response: Response;
    try {
      response = await fetch("/graphql", { method: "POST", headers: this.headers(), body: JSON.stringify({ query: print(document), variables }) });
    } catch {
      throw new GatewayRequestError("The gateway cannot be reached. Check the connection and try again.", "UNAVAILABLE");
    }
    let body: { data?: R | null; errors?: GraphQLErrorShape[] };
    try {
      body = (await response.json()) as typeof body;
    } catch {
      throw new GatewayRequestError(`The gateway answered ${response.status} without a GraphQL result.`, response.status === 503 ? "UNAVAILABLE" : "INTERNAL_SERVER_ERROR");
    }
    const first = body.errors?.[0];
    if (first) {
      const error = toRequestError(first);
      if (error.code === "UNAUTHENTICATED") this.onSignedOut("Your session has expired or the token is no longer accepted. Sign in again.");
      throw error;
    }
    return body.data as R;
  }

  /** Calls `onData` for each event until the returned function is called. */
  subscribe<R, V>(document: TypedDocumentNode<R, V>, variables: V, onData: (data: R) => void, onError: (error: GatewayRequestError) => void): () => void {
    return this.ws.subscribe<R>(
      { query: print(document), variables: variables as Record<string, unknown> },
      {
        next: (result) => {
          if (result.errors?.[0]) onError(toRequestError(result.errors[0] as GraphQLErrorShape));
          else if (result.data) onData(result.data);
        },
        error: (error) => {
          if (Array.isArray(error)) onError(toRequestError(error[0] as GraphQLErrorShape));
          else if (!isCloseEvent(error)) onError(new GatewayRequestError("Live updates were interrupted; reconnecting.", "UNAVAILABLE"));
        },
        complete: () => {},
      },
    );
  }

  close(): void {
    void this.ws.dispose();
  }
}

function isCloseEvent(value: unknown): value is CloseEvent {
  return typeof value === "object" && value !== null && "code" in value && "reason" in value;
}
