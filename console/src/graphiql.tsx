import { createGraphiQLFetcher, type Fetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import "graphiql/style.css";
import { createClient } from "graphql-ws";
import { createRoot } from "react-dom/client";
import { storedSession } from "./api/session";

/**
 * GraphiQL served by the gateway at GET /graphql for browsers, bundled from the graphiql package (no CDN).
 * Queries and mutations go over HTTP, subscriptions over graphql-ws; both carry the headers in the editor,
 * which start with the console's sign-in of this tab when there is one.
 */
const session = storedSession();
const initialHeaders: Record<string, string> = session
  ? session.kind === "jwt"
    ? { Authorization: `Bearer ${session.credential}` }
    : { "x-api-key": session.credential }
  : { Authorization: "Bearer <paste a JWT>" };

// The WebSocket authenticates once, at connection_init, with the headers of the operation that opened it.
let currentHeaders: Record<string, unknown> = initialHeaders;
const header = (name: string) => Object.entries(currentHeaders).find(([key]) => key.toLowerCase() === name)?.[1];
const wsClient = createClient({
  url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`,
  lazy: true,
  connectionParams: () => {
    const authorization = header("authorization");
    const apiKey = header("x-api-key");
    return { ...(typeof authorization === "string" ? { authorization } : {}), ...(typeof apiKey === "string" ? { apiKey } : {}) };
  },
});
// Base headers too: GraphiQL fetches the schema before the headers editor has been read.
const httpAndWs = createGraphiQLFetcher({ url: "/graphql", wsClient, headers: session ? initialHeaders : undefined });
const fetcher: Fetcher = (params, options) => {
  if (options?.headers) currentHeaders = options.headers;
  return httpAndWs(params, options);
};

// `?query=` opens an operation (shareable links), as GraphiQL's own examples do.
const params = new URLSearchParams(location.search);

createRoot(document.getElementById("graphiql")!).render(
  <GraphiQL
    fetcher={fetcher}
    defaultQuery={"# Welcome to the gateway's API explorer.\n{\n  commands(first: 5) {\n    edges { node { id type status } }\n  }\n}\n"}
    query={params.get("query") ?? undefined}
    defaultHeaders={JSON.stringify(initialHeaders, null, 2)}
    shouldPersistHeaders={false}
    isHeadersEditorEnabled
  />,
);
