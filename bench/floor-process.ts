import { randomBytes, randomUUID } from "node:crypto";
import { MongoClient, type Collection } from "mongodb";
import mqtt from "mqtt";
import type { Command, CommandStatus } from "../src/commands/command";
import { encodeCommandMessage } from "../src/commands/command-message";
import { startEmbeddedBroker } from "../src/embedded/broker";
import { createLogger } from "../src/logger";
import { disableNagle } from "../src/mqtt/no-delay";
import { createTopics } from "../src/mqtt/topics";
import { memoryAfterGc, serveParent, type FloorRunRequest, type FloorRunResult, type ReadyMessage } from "./ipc";

type CommandDocument = Omit<Command, "id"> & { _id: string };

/**
 * The floor: the least work that delivers a command with the gateway's guarantees, with no gateway.
 * The same MongoDB driver inserts the command document and applies the same transitions
 * (QUEUED → SENT on PUBACK → DELIVERED → SUCCEEDED, each a findOneAndUpdate with $push history),
 * mqtt.js publishes it on the same kind of broker, and the same simulated devices (in the parent) reply.
 * No GraphQL, no authorisation, no leases, no event bus. Runs in its own process, as the gateway does.
 */
async function main(): Promise<void> {
  const env = process.env;
  const log = createLogger(env.LOG_LEVEL ?? "warn");
  const topics = createTopics(env.MQTT_TOPIC_PREFIX ?? "iot");
  const stack: Array<() => Promise<unknown>> = [];

  let mqttUrl = env.MQTT_URL;
  let credentials: { username?: string; password?: string } = {};
  if (!mqttUrl) {
    // The embedded aedes with the gateway's ACL, as the gateway under test has it.
    const gatewayCredentials = { username: "floor", password: randomBytes(24).toString("base64url") };
    const broker = await startEmbeddedBroker({
      port: 0,
      host: "127.0.0.1",
      topics,
      gatewayCredentials,
      // The floor keeps no device registry: every well-formed device id is let in.
      devices: { isRegisteredDevice: () => true },
      log,
    });
    stack.push(() => broker.close());
    mqttUrl = broker.url;
    credentials = gatewayCredentials;
  }
  const client = new MongoClient(env.MONGODB_URI!, { maxPoolSize: 50, appName: "bench-floor" });
  await client.connect();
  stack.push(() => client.close());
  const collection = client.db(env.MONGODB_DB ?? "bench_floor").collection<CommandDocument>("commands");
  const connection = await mqtt.connectAsync(mqttUrl, { clientId: `floor-${process.pid}`, ...credentials, protocolVersion: 4, clean: true });
  disableNagle(connection);
  stack.push(() => connection.endAsync());

  const inFlight = new Map<string, InFlight>();
  connection.on("message", (topic, payload) => {
    const deviceId = topics.parseDeviceTopic(topic)?.deviceId;
    let reply: { id?: string; status?: string };
    try {
      reply = JSON.parse(payload.toString("utf8"));
    } catch {
      return;
    }
    const command = reply.id ? inFlight.get(reply.id) : undefined;
    if (!command || command.deviceId !== deviceId) return;
    if (reply.status === "DELIVERED") command.chain = command.chain.then(() => transition(collection, command.id, ["QUEUED", "SENT"], "DELIVERED", `device:${deviceId}`, { deliveredAt: new Date() }));
    else if (reply.status === "SUCCEEDED") {
      command.chain = command.chain
        .then(() => transition(collection, command.id, ["QUEUED", "SENT", "DELIVERED"], "SUCCEEDED", `device:${deviceId}`, { completedAt: new Date(), result: (reply as { result?: Record<string, unknown> }).result ?? {} }))
        .then(command.done, command.failed);
    }
  });
  await connection.subscribeAsync(topics.allDevices("replies"), { qos: 1 });

  const send = async (deviceId: string): Promise<number> => {
    const started = performance.now();
    const now = new Date();
    const command: Command = {
      id: randomUUID(),
      v: 0,
      tenant: "bench",
      site: "site-a",
      deviceId,
      type: "thermostat.setTemperature",
      payload: { celsius: 21 },
      status: "QUEUED",
      source: "OPERATOR",
      issuedBy: "floor",
      attempt: 1,
      timeoutSeconds: 30,
      expiresAt: new Date(now.getTime() + 3_600_000),
      createdAt: now,
      updatedAt: now,
      history: [{ status: "QUEUED", at: now, actor: "floor" }],
    };
    const { id, ...rest } = command;
    await collection.insertOne({ _id: id, ...rest });
    // Replies wait for the SENT update, as the gateway orders one command's updates.
    let sentDone!: () => void;
    const sentGate = new Promise<void>((resolve) => (sentDone = resolve));
    const finished = new Promise<void>((done, failed) => {
      inFlight.set(id, { id, deviceId, chain: sentGate, done: () => done(), failed });
    });
    await connection.publishAsync(topics.commands(deviceId), encodeCommandMessage(command), { qos: 1 });
    const sentAt = new Date();
    await transition(collection, id, ["QUEUED"], "SENT", "floor", { sentAt, deadline: new Date(sentAt.getTime() + 30_000) });
    sentDone();
    await finished;
    inFlight.delete(id);
    return performance.now() - started;
  };

  const run = async ({ concurrency, durationMs, deviceIds }: FloorRunRequest): Promise<FloorRunResult> => {
    const latenciesMs: number[] = [];
    const started = performance.now();
    const until = started + durationMs;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, worker) => {
        for (let i = 0; performance.now() < until; i++) latenciesMs.push(await send(deviceIds[(worker + i * concurrency) % deviceIds.length]!));
      }),
    );
    return { completed: latenciesMs.length, elapsedMs: performance.now() - started, latenciesMs };
  };

  serveParent(
    async (request) => {
      if (request.kind === "memory") return memoryAfterGc();
      if (request.kind === "run") return run(request.run);
      throw new Error(`unknown request ${request.kind}`);
    },
    async () => {
      while (stack.length) await stack.pop()!();
    },
  );
  const ready: ReadyMessage = { kind: "ready", mqttUrl };
  process.send!(ready);
}

interface InFlight {
  id: string;
  deviceId: string | undefined;
  chain: Promise<unknown>;
  done: () => void;
  failed: (error: unknown) => void;
}

function transition(
  collection: Collection<CommandDocument>,
  id: string,
  from: CommandStatus[],
  to: CommandStatus,
  actor: string,
  set: Partial<CommandDocument>,
) {
  const at = new Date();
  return collection.findOneAndUpdate(
    { _id: id, status: { $in: from } },
    { $set: { ...set, status: to, updatedAt: at }, $push: { history: { status: to, at, actor } } },
    { returnDocument: "after" },
  );
}

main().catch((error: Error) => {
  console.error(`bench floor failed: ${error.message}`);
  process.exit(1);
});
