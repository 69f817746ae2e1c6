import pino from "pino";
import { traceLogFields } from "./observability/tracing";

export type Logger = pino.Logger;

/**
 * JSON logs on stdout (pino); `LOG_LEVEL` sets the level. Secrets are redacted wherever they might appear.
 * A line written while a span is active carries its `trace_id` and `span_id`.
 */
export function createLogger(level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({
    level,
    base: { service: "iot-gateway" },
    mixin: traceLogFields,
    redact: { paths: ["*.authorization", "*.password", "*.apiKey", "*.key", "*.token", "*.secret"], censor: "[redacted]" },
  });
}

/** A URL fit for logs: user name and password (e.g. `mqtt://gw:secret@host`) removed. */
export function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = "";
    parsed.password = "";
    return parsed.toString();
  } catch {
    return "[unparsable URL]";
  }
}
