import pino from "pino";

export type Logger = pino.Logger;

/** JSON logs on stdout (pino); `LOG_LEVEL` sets the level. Secrets are redacted wherever they might appear. */
export function createLogger(level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({
    level,
    base: { service: "iot-gateway" },
    redact: { paths: ["*.authorization", "*.password", "*.apiKey", "*.key", "*.token", "*.secret"], censor: "[redacted]" },
  });
}
