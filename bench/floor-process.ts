import { randomBytes } from "node:crypto";
import { MongoClient, type Collection } from "mongodb";
import mqtt from "mqtt";
import type { Command, CommandStatus } from "../src/commands/command";
import { encodeCommandMessage } from "../src/commands/command-message";
import { startEmbeddedBroker } from "../src/embedded/broker";
import { createLogger } from "../src/logger";
import { disableNagle } from "../src/mqtt/no-delay";
import { createTopics } from "../src/mqtt/topics";
import { sendTopic, transitionTopic, type ReferenceMode, type SendRequest, type TransitionNotice } from "./floor-protocol";
import { memoryAfterGc, serveParent, type ReadyMessage } from "./ipc";
import { countStoreOps } from "./store-ops";

/** `v` counts writes, as a store that guards updates by version expects; it costs the floor nothing. */
type CommandDocument = Omit<Command, "id"> & { _id: string; v: number };

/**
 * The two references, with no gateway: the least work that delivers a command and tells a subscriber about
 * every transition. The same MongoDB driver inserts the command document and applies QUEUED → SENT (on
 * PUBACK) → DELIVERED → SUCCEEDED, each with $push of history; mqtt.js publishes it on the same kind of
 * broker; the same simulated devices (in the bench process) reply; each transition is published on the
 * broker, where the bench receives it, as the gateway publishes on its bus for its subscribers.
 * No GraphQL, no authorisation, no leases, no event bus between replicas. Runs in its own process, as the
 * gateway does, against the gateway's own `commands` collection (the same store set-up).
 *
 * - floor: each transition is `findOneAndUpdate({ _id, status: { $in: from } })`, the natural MongoDB idiom
 *   for a guarded transition; a transition that matches nothing fails the command.
 * - limit: the same insert and three updates as `updateOne({ _id })`, with no status condition: not the
 *   same guarantees, an upper bound on what the store allows for four writes per command.
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
  const client = new MongoClient(env.MONGODB_URI!, { maxPoolSize: 50, appName: "bench-floor", monitorCommands: true });
  const storeOps = countStoreOps(client);
  await client.connect();
  stack.push(() => client.close());
  const collection = client.db(env.MONGODB_DB!).collection<CommandDocument>("commands");
  const connection = await mqtt.connectAsync(mqttUrl, { clientId: `floor-${process.pid}`, ...credentials, protocolVersion: 4, clean: true });
  disableNagle(connection);
  stack.push(() => connection.endAsync());

  const announce = (notice: TransitionNotice) => {
    connection.publishAsync(transitionTopic(topics), JSON.stringify(notice), { qos: 1 }).catch((error: Error) => log.warn({ err: error.message }, "floor: announce failed"));
  };
  const write = (mode: ReferenceMode, id: string, from: CommandStatus[], to: CommandStatus, actor: string, set: Partial<CommandDocument>) =>
    transition(collection, mode, id, from, to, actor, set).then(() => announce({ id, status: to }));

  const inFlight = new Map<string, InFlight>();
  const onReply = (deviceId: string | undefined, payload: Buffer) => {
    let reply: { id?: string; status?: string; result?: Record<string, unknown> };
    try {
      reply = JSON.parse(payload.toString("utf8"));
    } catch {
      return;
    }
    const command = reply.id ? inFlight.get(reply.id) : undefined;
    if (!command || command.deviceId !== deviceId) return;
    const actor = `device:${deviceId}`;
    if (reply.status === "DELIVERED") command.chain = command.chain.then(() => write(command.mode, command.id, ["QUEUED", "SENT"], "DELIVERED", actor, { deliveredAt: new Date() }));
    else if (reply.status === "SUCCEEDED") {
      command.chain = command.chain
        .then(() => write(command.mode, command.id, ["QUEUED", "SENT", "DELIVERED"], "SUCCEEDED", actor, { completedAt: new Date(), result: reply.result ?? {} }))
        .then(command.done, command.failed);
    }
  };

  const send = async ({ id, deviceId, mode }: SendRequest): Promise<void> => {
    const now = new Date();
    const command: Command = {
      id,
      v: 0,
      tenant: "bench-floor",
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
    const { id: _id, ...rest } = command;
    await collection.insertOne({ _id, ...rest, v: 0 });
    announce({ id, status: "QUEUED" });
    // Replies wait for the SENT update, as the gateway orders one command's updates.
    let sentDone!: () => void;
    let sentFailed!: (error: unknown) => void;
    const sentGate = new Promise<void>((resolve, reject) => ((sentDone = resolve), (sentFailed = reject)));
    sentGate.catch(() => undefined); // handled below, whether or not a reply chains onto it
    const finished = new Promise<void>((done, failed) => {
      inFlight.set(id, { id, deviceId, mode, chain: sentGate, done: () => done(), failed });
    });
    try {
      await connection.publishAsync(topics.commands(deviceId), encodeCommandMessage(command), { qos: 1 });
      const sentAt = new Date();
      await write(mode, id, ["QUEUED"], "SENT", "floor", { sentAt, deadline: new Date(sentAt.getTime() + 30_000) });
      sentDone();
    } catch (error) {
      sentFailed(error);
      inFlight.get(id)?.failed(error);
    }
    await finished.finally(() => inFlight.delete(id));
  };

  connection.on("message", (topic, payload) => {
    if (topic === sendTopic(topics)) {
      const request = JSON.parse(payload.toString("utf8")) as SendRequest;
      send(request).catch((error: Error) => announce({ id: request.id, status: "FAILED", detail: error.message }));
      return;
    }
    const parsed = topics.parseDeviceTopic(topic);
    if (parsed?.kind === "replies") onReply(parsed.deviceId, payload);
  });
  await connection.subscribeAsync([topics.allDevices("replies"), sendTopic(topics)], { qos: 1 });

  serveParent(
    async (request) => {
      if (request.kind === "memory") return memoryAfterGc();
      if (request.kind === "storeOps") return storeOps();
      throw new Error(`unknown request ${request.kind}`);
    },
    async () => {
      while (stack.length) await stack.pop()!();
    },
  );
  const ready: ReadyMessage = { kind: "ready", mqttUrl, benchCredentials: credentials };
  process.send!(ready);
}

interface InFlight {
  id: string;
  deviceId: string;
  mode: ReferenceMode;
  chain: Promise<unknown>;
  done: () => void;
  failed: (error: unknown) => void;
}

async function transition(
  collection: Collection<CommandDocument>,
  mode: ReferenceMode,
  id: string,
  from: CommandStatus[],
  to: CommandStatus,
  actor: string,
  set: Partial<CommandDocument>,
): Promise<void> {
  const at = new Date();
  const update = { $set: { ...set, status: to, updatedAt: at }, $push: { history: { status: to, at, actor } }, $inc: { v: 1 } };
  const matched =
    mode === "floor"
      ? (await collection.findOneAndUpdate({ _id: id, status: { $in: from } }, update, { returnDocument: "after" })) !== null
      : (await collection.updateOne({ _id: id }, update)).matchedCount === 1;
  if (!matched) throw new Error(`${mode}: ${from.join("|")} → ${to} of ${id} matched no command`);
}

main().catch((error: Error) => {
  console.error(`bench floor failed: ${error.message}`);
  process.exit(1);
});
