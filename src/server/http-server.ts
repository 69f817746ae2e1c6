import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ApolloServer } from "@apollo/server";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import { ApolloServerPluginLandingPageDisabled } from "@apollo/server/plugin/disabled";
import { expressMiddleware } from "@as-integrations/express5";
import cors from "cors";
import express, { type ErrorRequestHandler } from "express";
import { execute, getOperationAST, type ExecutionArgs, type GraphQLSchema, type OperationDefinitionNode } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer, type WebSocket } from "ws";
import type { Authenticator } from "../auth/authenticator";
import { principalKey, type Principal } from "../authz/principal";
import { GatewayError } from "../errors";
import type { Logger } from "../logger";
import type { Metrics } from "../observability/metrics";
import { costLimitPlugin, LIMIT_RULES, PARSE_OPTIONS, prepareOperation } from "./query-limits";
import type { GatewayContext } from "../../resolvers/context.type";
import { credentialsFromConnectionParams, credentialsFromHeaders, principalForRequest } from "./context";
import { mountConsole } from "./console-routes";
import { createFormatError } from "./format-error";
import { refuseOperation } from "./operation-guards";
import { annotate, inSpan, SpanKind, tracingEnabled, type TraceContext } from "../observability/tracing";
import { sharedSubscribe } from "./shared-subscriptions";

export interface HttpServerOptions {
  schema: GraphQLSchema;
  authenticator: Authenticator;
  metrics: Metrics;
  /** True while the store and the broker are connected. */
  isReady: () => boolean;
  /** False while the store is known to be down: mutations are refused at once instead of waiting. */
  isStoreAvailable: () => boolean;
  port: number;
  host: string;
  /** Introspection, GraphiQL and schema hints in errors ("Did you mean …?"). */
  introspection: boolean;
  /** Origins a browser may call /graphql from (CORS); empty: same origin only. */
  corsOrigins: string[];
  log: Logger;
}

export interface RunningHttpServer {
  server: Server;
  port: number;
  /** Closes the WebSocket connections whose principal matches, e.g. those of a revoked API key. */
  closeConnections(match: (principal: Principal) => boolean, code: number, reason: string): void;
  close(): Promise<void>;
}

export const MAX_BODY_BYTES = 100 * 1024;
const GRAPHQL_PATH = "/graphql";
/** WebSocket close codes: no valid credentials; valid credentials that are allowed nothing (a revoked API key). */
export const WS_UNAUTHORIZED = 4401;
export const WS_FORBIDDEN = 4403;
/** setTimeout's limit; a token valid for longer is simply not closed by a timer. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** GraphQL over HTTP (Apollo 5 on Express 5) and WebSocket (graphql-ws) on one port and path, plus health and metrics. */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const { schema, authenticator, metrics, log } = options;
  const app = express();
  app.disable("x-powered-by");
  const server = createServer(app);

  const formatError = createFormatError(log);
  const wsServer = new WebSocketServer({ server, path: GRAPHQL_PATH, maxPayload: MAX_BODY_BYTES });
  const authenticated = new Map<WebSocket, Principal>();
  const wsCleanup = useServer<Record<string, unknown>, { principal: Principal }>(
    {
      schema,
      context: (ctx): GatewayContext => ({ principal: ctx.extra.principal! }),
      ...(tracingEnabled() ? { execute: tracedExecute } : {}),
      // The context is the principal alone: connections of equal principals asking the same share one execution per event.
      subscribe: sharedSubscribe((args) => principalKey((args.contextValue as GatewayContext).principal)),
      onConnect: async (ctx) => {
        const socket = ctx.extra.socket;
        let principal: Principal;
        try {
          principal = await authenticator.authenticate(credentialsFromConnectionParams(ctx.connectionParams));
        } catch (error) {
          // graphql-ws would say 4403 for every refusal; 4401 tells a client to get new credentials.
          if (error instanceof GatewayError && error.code === "FORBIDDEN") socket.close(WS_FORBIDDEN, "Forbidden");
          else socket.close(WS_UNAUTHORIZED, "Unauthorized");
          return false;
        }
        ctx.extra.principal = principal;
        authenticated.set(socket, principal);
        const expiresIn = principal.kind === "user" && principal.expiresAt !== undefined ? principal.expiresAt - Date.now() : undefined;
        const expiry =
          expiresIn !== undefined && expiresIn < MAX_TIMER_MS ? setTimeout(() => socket.close(WS_UNAUTHORIZED, "Token expired"), Math.max(0, expiresIn)) : undefined;
        socket.once("close", () => {
          clearTimeout(expiry);
          authenticated.delete(socket);
        });
        return true;
      },
      onSubscribe: (_ctx, _id, payload) => {
        const prepared = prepareOperation(schema, payload);
        if (!("document" in prepared)) return prepared;
        const refusal = refuseOperation(getOperationAST(prepared.document, prepared.operationName)?.operation, "ws", options.isStoreAvailable);
        if (refusal) return [refusal];
        metrics.subscriptions.inc();
        return prepared;
      },
      // The same formatting and masking as HTTP: codes kept, internal errors logged and answered without their message.
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors ? { ...result, errors: result.errors.map((error) => formatError(error.toJSON(), error)) } : undefined,
      onError: (_ctx, _id, _payload, errors) => errors.map((error) => formatError(error.toJSON(), error)),
      onComplete: () => {
        metrics.subscriptions.dec();
      },
    },
    wsServer,
  );
  wsServer.on("connection", (socket) => {
    metrics.wsConnections.inc();
    metrics.wsConnectionsTotal.inc();
    socket.once("close", () => metrics.wsConnections.dec());
  });

  const apollo = new ApolloServer<GatewayContext>({
    schema,
    formatError,
    introspection: options.introspection,
    hideSchemaDetailsFromClientErrors: !options.introspection,
    includeStacktraceInErrorResponses: false,
    // main.ts owns SIGTERM/SIGINT and stops everything in order; Apollo's own handlers (on outside
    // NODE_ENV=test) would stop the server under it and hold the shutdown until it was forced.
    stopOnTerminationSignals: false,
    validationRules: LIMIT_RULES,
    parseOptions: PARSE_OPTIONS,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer: server }),
      {
        async serverWillStart() {
          return {
            async drainServer() {
              await wsCleanup.dispose();
            },
          };
        },
      },
      costLimitPlugin<GatewayContext>(),
      {
        async requestDidStart() {
          return {
            async didResolveOperation({ operation, contextValue }) {
              // The request's span (below) gets the operation's name: "mutation SendCommand".
              const { spanName, attributes } = operationSpan(operation);
              annotate(contextValue.trace, attributes, spanName);
              const refusal = refuseOperation(operation?.operation, "http", options.isStoreAvailable);
              if (refusal) throw refusal;
            },
          };
        },
      },
      // Apollo's landing page loads from a CDN; browsers get the bundled GraphiQL instead (console-routes).
      ApolloServerPluginLandingPageDisabled(),
    ],
  });
  await apollo.start();

  app.use((req, res, next) => {
    res.on("finish", () => metrics.httpRequests.inc({ route: routeLabel(req.path), code: String(res.statusCode) }));
    next();
  });
  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.get("/readyz", (_req, res) => {
    const ready = options.isReady();
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "unavailable" });
  });
  app.get("/metrics", async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  mountConsole(app, { introspection: options.introspection, log });
  app.use(
    GRAPHQL_PATH,
    // Off unless origins are listed. Credentials travel in headers, never cookies: no `credentials`.
    ...(options.corsOrigins.length
      ? [cors({ origin: options.corsOrigins, methods: ["GET", "POST"], allowedHeaders: ["content-type", "authorization", "x-api-key"], maxAge: 600 })]
      : []),
    express.json({ limit: MAX_BODY_BYTES }),
    ...(tracingEnabled() ? [graphqlRequestSpan] : []),
    expressMiddleware(apollo, {
      context: async ({ req, res }) => ({
        principal: await principalForRequest(authenticator, credentialsFromHeaders(req.headers)),
        trace: res.locals.trace as TraceContext,
      }),
    }),
  );
  app.use(bodyErrors);

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, path: GRAPHQL_PATH }, "GraphQL listening (HTTP and WebSocket)");
  return {
    server,
    port,
    closeConnections(match, code, reason) {
      for (const [socket, principal] of authenticated) if (match(principal)) socket.close(code, reason);
    },
    close: async () => {
      await apollo.stop();
      wsServer.close();
    },
  };
}

/**
 * A GraphQL request's span (tracing on), from after the body is read (its stream callbacks would run
 * outside it) until the response is sent; a caller's W3C `traceparent` header makes it a child of the caller's.
 */
const graphqlRequestSpan: express.RequestHandler = (req, res, next) => {
  const traceparent = typeof req.headers.traceparent === "string" ? req.headers.traceparent : undefined;
  void inSpan("graphql.request", { kind: SpanKind.SERVER, parent: traceparent, attributes: { "http.request.method": req.method } }, (trace) =>
    new Promise<void>((resolve) => {
      res.once("close", resolve);
      // For the GraphQL context: resolvers hand it to the services.
      res.locals.trace = trace;
      next();
    }),
  );
};

/**
 * A query or mutation over WebSocket in a span of its own (tracing on), named as an HTTP request's
 * ("mutation SendCommand"); subscriptions have none (their events are moments of the commands' traces).
 */
function tracedExecute(args: ExecutionArgs) {
  const { spanName, attributes } = operationSpan(getOperationAST(args.document, args.operationName));
  return inSpan(spanName, { kind: SpanKind.SERVER, attributes: { ...attributes, "network.protocol.name": "websocket" } }, (trace) =>
    execute({ ...args, contextValue: { ...(args.contextValue as GatewayContext), trace } }),
  );
}

/** An operation's span name ("mutation SendCommand", or the type alone when unnamed) and attributes. */
function operationSpan(operation: OperationDefinitionNode | null | undefined) {
  const type = operation?.operation ?? "operation";
  const name = operation?.name?.value;
  return { spanName: name ? `${type} ${name}` : type, attributes: { "graphql.operation.type": type, ...(name ? { "graphql.operation.name": name } : {}) } };
}

function routeLabel(path: string): string {
  if (path === "/console" || path.startsWith("/console/")) return "/console";
  return ["/graphql", "/healthz", "/readyz", "/metrics"].includes(path) ? path : "other";
}

/** Body parser refusals (bad JSON, too large) answered in GraphQL's error shape with the contract's code. */
const bodyErrors: ErrorRequestHandler = (error, _req, res, next) => {
  const status = typeof error?.status === "number" ? error.status : 500;
  if (status >= 500) return next(error);
  const message = status === 413 ? `Request body is larger than ${MAX_BODY_BYTES} bytes` : "Request body is not valid JSON";
  res.status(status).json({ errors: [{ message, extensions: { code: "BAD_USER_INPUT" } }] });
};
