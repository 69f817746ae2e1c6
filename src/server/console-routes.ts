import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import express, { type Express, type Request, type Response } from "express";
import type { Logger } from "../logger";

/** Where `npm run build` puts the console and GraphiQL (console/vite.config.ts), beside dist/src. */
export const CONSOLE_DIR = resolve(__dirname, "../../console");
const HOST_HEADER = /^[A-Za-z0-9.\-:[\]]+$/;

/**
 * Only this origin: the pages load nothing from another host even if a dependency tried. Ajv (the send
 * form's browser validation) compiles schemas to functions, hence 'unsafe-eval'; GraphiQL sets inline styles.
 */
function contentSecurityPolicy(req: Request): string {
  const host = req.headers.host && HOST_HEADER.test(req.headers.host) ? req.headers.host : "";
  const sockets = host ? ` ws://${host} wss://${host}` : "";
  return [
    "default-src 'self'",
    "script-src 'self' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    `connect-src 'self'${sockets}`,
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
  ].join("; ");
}

function securityHeaders(req: Request, res: Response): void {
  res.setHeader("content-security-policy", contentSecurityPolicy(req));
  res.setHeader("x-content-type-options", "nosniff");
  res.setHeader("referrer-policy", "no-referrer");
}

/**
 * The operator console at /console and GraphiQL at GET /graphql for browsers (Accept: text/html), both
 * from the files built into dist/console (CONTRACT §6.1). GraphiQL is mounted only where introspection
 * is on; mount this before the GraphQL middleware so a browser's GET does not reach Apollo.
 */
export function mountConsole(app: Express, options: { introspection: boolean; log: Logger; dir?: string }): void {
  const dir = options.dir ?? CONSOLE_DIR;
  const built = existsSync(join(dir, "index.html"));
  if (!built) options.log.warn({ dir }, "the console is not built (npm run build builds it); /console answers 503");

  app.use("/console", (req, res, next) => {
    securityHeaders(req, res);
    if (!built) {
      res.status(503).type("text/plain").send("The console is not built: run `npm run build`.\n");
      return;
    }
    next();
  });
  // Hashed asset names may be cached for long; the page itself is always revalidated.
  app.use(
    "/console",
    express.static(dir, {
      index: "index.html",
      setHeaders: (res, path) => res.setHeader("cache-control", path.includes("/assets/") ? "public, max-age=31536000, immutable" : "no-cache"),
    }),
  );

  if (!options.introspection || !built) return;
  app.get("/graphql", (req, res, next) => {
    // A GraphQL GET request (with ?query and a JSON Accept) still goes to Apollo.
    if (req.accepts(["application/json", "application/graphql-response+json", "text/html"]) !== "text/html") return next();
    securityHeaders(req, res);
    res.setHeader("cache-control", "no-cache");
    res.sendFile(join(dir, "graphiql.html"));
  });
}
