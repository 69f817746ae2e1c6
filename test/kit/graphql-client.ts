import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print, type GraphQLFormattedError } from "graphql";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";

export interface Credentials {
  token?: string;
  apiKey?: string;
}

export interface GraphQLResponse<R> {
  status: number;
  data?: R | null;
  errors?: GraphQLFormattedError[];
}

/** Talks to the gateway exactly as a client would: HTTP POST and graphql-ws, with typed documents from codegen. */
export class GraphQLTestClient {
  constructor(
    private readonly baseUrl: string,
    private readonly credentials: Credentials = {},
  ) {}

  headers(): Record<string, string> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.credentials.token) headers.authorization = `Bearer ${this.credentials.token}`;
    if (this.credentials.apiKey) headers["x-api-key"] = this.credentials.apiKey;
    return headers;
  }

  async request<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<GraphQLResponse<R>> {
    const response = await fetch(`${this.baseUrl}/graphql`, {
      method: "POST",
      headers: this.headers(),
      body: JSON.stringify({ query: print(document), variables }),
    });
    return { status: response.status, ...((await response.json()) as object) };
  }

  /** The data, or a thrown error carrying the GraphQL errors. */
  async data<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<R> {
    const response = await this.request(document, variables);
    if (response.errors?.length || !response.data) throw new Error(`GraphQL errors: ${JSON.stringify(response.errors)}`);
    return response.data;
  }

  /** The first error's `extensions.code` (the request must fail). */
  async errorCode<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<string> {
    const response = await this.request(document, variables);
    const code = response.errors?.[0]?.extensions?.code;
    if (typeof code !== "string") throw new Error(`expected an error, got ${JSON.stringify(response)}`);
    return code;
  }

  /** Opens a graphql-ws connection with `connection_init` credentials. */
  ws(): Client {
    return createClient({
      url: `${this.baseUrl.replace(/^http/, "ws")}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: this.credentials.token
        ? { authorization: `Bearer ${this.credentials.token}` }
        : this.credentials.apiKey
          ? { apiKey: this.credentials.apiKey }
          : {},
      retryAttempts: 0,
      lazy: false,
    });
  }

  /**
   * Subscribes and collects every event; `waitFor` resolves when one matches. Resolves once the socket
   * is acknowledged; graphql-ws says nothing when the subscription itself is registered, so a test that
   * must not miss an event first calls `ready()` with a marker.
   */
  async subscribe<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<Subscription<R>> {
    const client = this.ws();
    const subscription = new Subscription<R>(client);
    await new Promise<void>((resolve, reject) => {
      client.on("connected", () => resolve());
      client.on("closed", (event) => reject(new Error(`WebSocket closed: ${(event as { code?: number }).code}`)));
    });
    client.subscribe<R>(
      { query: print(document), variables: variables as Record<string, unknown> | undefined },
      {
        next: (value) => subscription.push(value.data as R, value.errors as GraphQLFormattedError[] | undefined),
        error: (error) => subscription.fail(error),
        complete: () => undefined,
      },
    );
    return subscription;
  }
}

export class Subscription<R> {
  readonly values: R[] = [];
  readonly errors: unknown[] = [];
  private waiters: Array<{ match: (value: R) => boolean; resolve: (value: R) => void }> = [];

  constructor(private readonly client: Client) {}

  push(value: R, errors?: GraphQLFormattedError[]): void {
    if (errors?.length) this.errors.push(...errors);
    if (value == null) return;
    this.values.push(value);
    this.waiters = this.waiters.filter((waiter) => {
      if (!waiter.match(value)) return true;
      waiter.resolve(value);
      return false;
    });
  }

  fail(error: unknown): void {
    this.errors.push(error);
  }

  /**
   * The barrier for "the server has registered this subscription": `trigger` causes a harmless event
   * that passes the subscription's filter and returns how to recognise it; resolves once one such
   * event arrived. An event published before the registration is lost, so the marker is repeated.
   */
  async ready(trigger: () => Promise<(value: R) => boolean>, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let wait = 200; ; wait = Math.min(wait * 2, 2_000)) {
      const marker = await trigger();
      const arrived = await this.waitFor(marker, wait).then(
        () => true,
        () => false,
      );
      if (arrived) return;
      if (Date.now() > deadline) throw new Error(`the subscription received none of its markers in ${timeoutMs} ms`);
    }
  }

  waitFor(match: (value: R) => boolean, timeoutMs = 10_000): Promise<R> {
    const found = this.values.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no matching subscription event in ${timeoutMs} ms; got ${JSON.stringify(this.values)} ${JSON.stringify(this.errors)}`)),
        timeoutMs,
      );
      this.waiters.push({
        match,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
      });
    });
  }

  async close(): Promise<void> {
    await this.client.dispose();
  }
}
