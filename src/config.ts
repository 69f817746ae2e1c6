import { z } from "zod";
import { normalizeHost } from "./alerts/webhooks/url-guard";

/** Start-up configuration, parsed once from the environment (CONTRACT §1). */
export interface Config {
  port: number;
  host: string;
  mongodbUri: string | undefined;
  mongodbDb: string;
  dataDir: string;
  mqttUrl: string | undefined;
  mqttUsername: string | undefined;
  mqttPassword: string | undefined;
  mqttPort: number;
  /** Interface of the embedded broker. */
  mqttHost: string;
  /** Messages one device may publish per second to the embedded broker. */
  mqttClientMessagesPerSecond: number;
  mqttTopicPrefix: string;
  mqttSharedGroup: string | undefined;
  jwtSecret: string | undefined;
  jwtJwksUrl: string | undefined;
  jwtIssuer: string | undefined;
  jwtAudience: string | undefined;
  demo: boolean;
  production: boolean;
  /** A gateway replica's identity: MQTT client id suffix and owner of dispatch leases. */
  replicaId: string;
  /** REPLICA_ID was given: the replica keeps its identity (and its broker session) across restarts. */
  stableReplicaId: boolean;
  /** How long a dispatch claim holds before another replica may take the command over. */
  dispatchLeaseMs: number;
  /** Introspection and the landing page; default on, off with NODE_ENV=production unless GRAPHQL_INTROSPECTION=1. */
  introspection: boolean;
  /** Mutations one principal may make per minute (a token bucket per replica). */
  rateLimitMutationsPerMinute: number;
  /** QUEUED commands one device may have; a send beyond it is RATE_LIMITED. */
  maxQueuedPerDevice: number;
  /** Days a final command (and its resolved alerts) is kept; 0 keeps everything. */
  retentionDays: number;
  /** Hosts (normalized: lower case, no brackets) alert webhooks may reach although they resolve to non-public addresses. */
  alertWebhookAllowHosts: ReadonlySet<string>;
  /** Back-off after a delivery's first failed attempt; it doubles with each further one. */
  alertWebhookFirstRetryMs: number;
  /** How long a delivery is retried before it is marked failed. */
  alertWebhookRetryWindowMs: number;
  /** How long one delivery attempt may take, answer included. */
  alertWebhookTimeoutMs: number;
  /** Browser origins allowed to call /graphql across origins (CORS); empty: none. */
  corsOrigins: string[];
}

export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`${variable}: ${problem}`);
  }
}

const port = (fallback: number) =>
  z.coerce.number({ error: "must be a number" }).int("must be an integer").min(0, "must be 0..65535").max(65535, "must be 0..65535").default(fallback);
const optional = z.string().trim().min(1).optional();
const positiveInt = (fallback: number, max: number) =>
  z.coerce.number({ error: "must be a number" }).int("must be an integer").min(1, "must be at least 1").max(max, `must be at most ${max}`).default(fallback);
const url = (protocols: string[]) =>
  z
    .string()
    .trim()
    .refine((value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    }, `must be a URL with scheme ${protocols.map((p) => p.replace(":", "://")).join(", ")}`)
    .optional();

const schema = z
  .object({
    PORT: port(4000),
    HOST: z.string().trim().min(1).default("0.0.0.0"),
    MONGODB_URI: url(["mongodb:", "mongodb+srv:"]),
    MONGODB_DB: z.string().trim().regex(/^[A-Za-z0-9_-]{1,63}$/, "must be 1-63 letters, digits, _ or -").default("iot_gateway"),
    DATA_DIR: z.string().trim().min(1).default("./data"),
    MQTT_URL: url(["mqtt:", "mqtts:", "ws:", "wss:"]),
    MQTT_USERNAME: optional,
    MQTT_PASSWORD: optional,
    MQTT_PORT: port(1883),
    MQTT_HOST: z.string().trim().min(1).default("127.0.0.1"),
    MQTT_CLIENT_MESSAGES_PER_SECOND: positiveInt(100, 1_000_000),
    MQTT_TOPIC_PREFIX: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/, "must be topic levels of letters, digits, _ or - separated by /")
      .default("iot"),
    MQTT_SHARED_GROUP: z.string().trim().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 letters, digits, _ or -").optional(),
    JWT_SECRET: z.string().min(32, "must be at least 32 characters (HS256)").optional(),
    JWT_JWKS_URL: url(["https:", "http:"]),
    JWT_ISSUER: optional,
    JWT_AUDIENCE: optional,
    DEMO: z.enum(["0", "1", "false", "true"], { error: "must be 0 or 1" }).default("1"),
    NODE_ENV: z.string().optional(),
    REPLICA_ID: z.string().trim().regex(/^[A-Za-z0-9_-]{1,40}$/, "must be 1-40 letters, digits, _ or -").optional(),
    DISPATCH_LEASE_MS: z.coerce.number({ error: "must be a number" }).int().min(1_000, "must be at least 1000").max(300_000, "must be at most 300000").default(15_000),
    GRAPHQL_INTROSPECTION: z.enum(["0", "1", "false", "true"], { error: "must be 0 or 1" }).optional(),
    RATE_LIMIT_MUTATIONS_PER_MINUTE: positiveInt(600, 1_000_000),
    MAX_QUEUED_PER_DEVICE: positiveInt(1000, 1_000_000),
    RETENTION_DAYS: z.coerce.number({ error: "must be a number" }).int("must be an integer").min(0, "must be 0 or more").max(36_500, "must be at most 36500").default(30),
    ALERT_WEBHOOK_ALLOW_HOSTS: z
      .string()
      .transform((value) => value.split(",").map((host) => normalizeHost(host.trim())).filter(Boolean))
      .refine((hosts) => hosts.every((host) => /^[a-z0-9._:-]+$/.test(host)), "must be a comma-separated list of host names or IP addresses")
      .optional(),
    ALERT_WEBHOOK_FIRST_RETRY_MS: z.coerce.number({ error: "must be a number" }).int().min(10, "must be at least 10").max(3_600_000, "must be at most 3600000").default(10_000),
    ALERT_WEBHOOK_RETRY_WINDOW_S: positiveInt(86_400, 7 * 86_400),
    ALERT_WEBHOOK_TIMEOUT_MS: z.coerce.number({ error: "must be a number" }).int().min(100, "must be at least 100").max(60_000, "must be at most 60000").default(5_000),
    CORS_ORIGINS: z
      .string()
      .transform((value) => value.split(",").map((origin) => origin.trim()).filter(Boolean))
      .refine((origins) => origins.every(isOrigin), "must be comma-separated origins such as https://console.example.com (scheme, host and port only)")
      .optional(),
  })
  .superRefine((env, ctx) => {
    if (env.JWT_SECRET && env.JWT_JWKS_URL) ctx.addIssue({ code: "custom", path: ["JWT_JWKS_URL"], message: "set either JWT_SECRET or JWT_JWKS_URL, not both" });
    if (!env.MONGODB_URI || !env.MQTT_URL) return;
    if (!env.JWT_SECRET && !env.JWT_JWKS_URL)
      ctx.addIssue({ code: "custom", path: ["JWT_SECRET"], message: "required (or JWT_JWKS_URL) when MONGODB_URI and MQTT_URL are set" });
  });

/** Parses the environment; throws a ConfigError naming the first bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means unset, as in `MONGODB_URI= npm start`.
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(env).filter(([, value]) => value?.trim())));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(String(issue.path[0] ?? "environment"), issue.message);
  }
  const e = parsed.data;
  return {
    port: e.PORT,
    host: e.HOST,
    mongodbUri: e.MONGODB_URI,
    mongodbDb: e.MONGODB_DB,
    dataDir: e.DATA_DIR,
    mqttUrl: e.MQTT_URL,
    mqttUsername: e.MQTT_USERNAME,
    mqttPassword: e.MQTT_PASSWORD,
    mqttPort: e.MQTT_PORT,
    mqttHost: e.MQTT_HOST,
    mqttClientMessagesPerSecond: e.MQTT_CLIENT_MESSAGES_PER_SECOND,
    mqttTopicPrefix: e.MQTT_TOPIC_PREFIX,
    mqttSharedGroup: e.MQTT_SHARED_GROUP,
    jwtSecret: e.JWT_SECRET,
    jwtJwksUrl: e.JWT_JWKS_URL,
    jwtIssuer: e.JWT_ISSUER,
    jwtAudience: e.JWT_AUDIENCE,
    demo: e.DEMO === "1" || e.DEMO === "true",
    production: e.NODE_ENV === "production",
    replicaId: e.REPLICA_ID ?? `${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    stableReplicaId: e.REPLICA_ID !== undefined,
    dispatchLeaseMs: e.DISPATCH_LEASE_MS,
    introspection: e.GRAPHQL_INTROSPECTION === undefined ? e.NODE_ENV !== "production" : e.GRAPHQL_INTROSPECTION === "1" || e.GRAPHQL_INTROSPECTION === "true",
    rateLimitMutationsPerMinute: e.RATE_LIMIT_MUTATIONS_PER_MINUTE,
    maxQueuedPerDevice: e.MAX_QUEUED_PER_DEVICE,
    retentionDays: e.RETENTION_DAYS,
    alertWebhookAllowHosts: new Set(e.ALERT_WEBHOOK_ALLOW_HOSTS ?? []),
    alertWebhookFirstRetryMs: e.ALERT_WEBHOOK_FIRST_RETRY_MS,
    alertWebhookRetryWindowMs: e.ALERT_WEBHOOK_RETRY_WINDOW_S * 1000,
    alertWebhookTimeoutMs: e.ALERT_WEBHOOK_TIMEOUT_MS,
    corsOrigins: e.CORS_ORIGINS ?? [],
  };
}

/** `https://host[:port]` exactly as a browser sends it in `Origin`: no path, no wildcard. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "https:" || url.protocol === "http:") && url.origin === value;
  } catch {
    return false;
  }
}
