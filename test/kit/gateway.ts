import { startGateway, type Gateway } from "../../src/app";
import { signToken, type TokenClaims } from "../../src/auth/jwt";
import { loadConfig } from "../../src/config";
import { createSimulatedDevice, DeviceClient, type CommandHandler, type SimulationOptions } from "../../src/device-sdk";
import { createLogger } from "../../src/logger";
import { CommandDocument, RetryCommandDocument, SendCommandDocument, type CommandStatus, type CommandUpdatedSubscription, type SendCommandInput } from "../generated/graphql";
import { GraphQLTestClient } from "./graphql-client";
import { MOSQUITTO_URL, testStoreUri, uniqueName } from "./store";

export const TEST_JWT_SECRET = "test-secret-0123456789-abcdefghijklmnop";

export interface TestGatewayOptions {
  /** `aedes`: the gateway's embedded broker; `mosquitto`: the machine's Mosquitto with a private topic prefix. */
  broker?: "aedes" | "mosquitto";
  /** Extra environment, e.g. MQTT_SHARED_GROUP. */
  env?: Record<string, string>;
  /** Reuse a database (a restart); default a fresh one. */
  database?: string;
  /** Share a topic prefix with another gateway (replicas on one broker); default a fresh one. */
  topicPrefix?: string;
}

export type DeviceOptions = Partial<SimulationOptions> & {
  site?: string;
  /** Default true: connected before the call returns. */
  connect?: boolean;
  /** Business logic instead of the simulated model's. */
  handler?: CommandHandler;
};

export interface TestGateway {
  gateway: Gateway;
  url: string;
  database: string;
  topicPrefix: string;
  tenant: string;
  /** A client signed for a role of `tenant` (or any claims). */
  as(role: "admin" | "operator" | "viewer", claims?: Partial<TokenClaims>): Promise<GraphQLTestClient>;
  /** Registers a device in `tenant` (through the API, as admin) and connects a simulated one. */
  device(id: string, model: string, options?: DeviceOptions): Promise<DeviceClient>;
  stop(): Promise<void>;
}

/**
 * Starts a gateway in this process on the real store and a real broker, with a fresh database;
 * `stop()` stops it and its devices (call it from an `after` hook).
 */
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const database = options.database ?? uniqueName("t_");
  const topicPrefix = options.topicPrefix ?? uniqueName("t");
  const env: Record<string, string> = {
    MONGODB_URI: await testStoreUri(),
    MONGODB_DB: database,
    MQTT_TOPIC_PREFIX: topicPrefix,
    MQTT_PORT: "0",
    PORT: "0",
    HOST: "127.0.0.1",
    JWT_SECRET: TEST_JWT_SECRET,
    DEMO: "0",
    ...(options.broker === "mosquitto" ? { MQTT_URL: MOSQUITTO_URL } : {}),
    ...options.env,
  };
  const gateway = await startGateway(loadConfig(env), createLogger(process.env.TEST_LOG_LEVEL ?? "warn"));
  const url = `http://127.0.0.1:${gateway.port}`;
  const tenant = uniqueName("tenant-");
  const devices: DeviceClient[] = [];
  let stopped = false;

  const as = async (role: "admin" | "operator" | "viewer", claims: Partial<TokenClaims> = {}) =>
    new GraphQLTestClient(url, { token: await signToken(TEST_JWT_SECRET, { sub: `${role}-user`, tenant, roles: [role], ...claims }) });

  const testGateway: TestGateway = {
    gateway,
    url,
    database,
    topicPrefix,
    tenant,
    as,
    async device(id, model, deviceOptions = {}) {
      const { site = "site-a", connect = true, handler, ...simulation } = deviceOptions;
      await gateway.services.devices.register({ kind: "user", id: "kit", tenant, roles: ["admin"] }, { id, site, model });
      const client = handler
        ? new DeviceClient({ deviceId: id, brokerUrl: gateway.mqttUrl, topicPrefix, handler })
        : createSimulatedDevice({ deviceId: id, model, brokerUrl: gateway.mqttUrl, topicPrefix, latencyMs: [0, 0], ...simulation });
      devices.push(client);
      if (connect) await client.start();
      return client;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(devices.map((d) => d.stop({ graceful: false }).catch(() => undefined)));
      await gateway.stop();
    },
  };
  return testGateway;
}

/** Polls `command(id)` until it reaches `status` (for when a subscription would start too late). */
export function waitForStatus(client: GraphQLTestClient, id: string, status: CommandStatus, timeoutMs = 10_000) {
  return waitForAnyStatus(client, id, [status], timeoutMs);
}

/** Polls `command(id)` until it reaches one of `statuses`. */
export async function waitForAnyStatus(client: GraphQLTestClient, id: string, statuses: CommandStatus[], timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  const status = statuses.join(" or ");
  for (;;) {
    const { command } = await client.data(CommandDocument, { id });
    if (command && statuses.includes(command.status)) return command;
    if (Date.now() > deadline) {
      const history = command?.history.map((h) => `${h.status}@${h.at}${h.detail ? `(${h.detail})` : ""}`).join(" ");
      throw new Error(`command ${id} is ${command?.status ?? "missing"}, not ${status}, after ${timeoutMs} ms; history: ${history}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A marker for `Subscription.ready()` on `commandUpdated`: each call sends a command (`input`) and
 * recognises any event of it. A real command: the test must allow for it on the device.
 */
export function commandMarker(client: GraphQLTestClient, input: SendCommandInput) {
  return async () => {
    const { sendCommand } = await client.data(SendCommandDocument, { input });
    return (update: CommandUpdatedSubscription) => update.commandUpdated.id === sendCommand.id;
  };
}

/**
 * `retryCommand(id)` for a command seen TIMED_OUT. A late final reply may have completed it in
 * between (CONTRACT §4), which makes the retry a CONFLICT: then the command must be SUCCEEDED.
 * Resolves with whether the retry was made.
 */
export async function retryUnlessCompleted(client: GraphQLTestClient, id: string): Promise<boolean> {
  const response = await client.request(RetryCommandDocument, { id });
  if (!response.errors?.length) return true;
  if (response.errors[0]?.extensions?.code !== "CONFLICT") throw new Error(`retryCommand(${id}) refused: ${JSON.stringify(response.errors)}`);
  const { command } = await client.data(CommandDocument, { id });
  if (command?.status !== "SUCCEEDED") throw new Error(`retryCommand(${id}) was a CONFLICT with the command ${command?.status}`);
  return false;
}
