import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { MongoClient, type Db } from "mongodb";
import { connectAsync } from "mqtt";
import WebSocket from "ws";
import { signToken } from "../../src/auth/jwt";
import { createSimulatedDevice } from "../../src/device-sdk";
import { findFreePort } from "../../src/embedded/free-port";
import { createTopics } from "../../src/mqtt/topics";
import { fixedHeader } from "../kit/mqtt-wire";
import { startGatewayProcess, type GatewayProcess } from "../kit/process";
import { testStoreUri, uniqueName } from "../kit/store";

/**
 * The hostile-input battery, continued (issue 10, what an outside tester broke): the same style as
 * `hostile-input.test.ts`, against a gateway process with its embedded broker (aedes), so the broker's
 * own defences are part of what is tested. A file of its own, so it runs beside the first one.
 */
describe("hostile input, issue 10: embedded broker, WebSocket, shapes and strings", () => {
  const secret = `issue10-${randomUUID()}-secret`;
  const prefix = uniqueName("h10");
  const topics = createTopics(prefix);
  const tenant = uniqueName("t10-");
  const ids = { th: uniqueName("th-"), raw: uniqueName("raw-"), flood: uniqueName("flood-") };
  let gateway: GatewayProcess;
  let url: string;
  let brokerUrl: string;
  let brokerPort: number;
  let mongo: MongoClient;
  let db: Db;
  let operator: string;
  let admin: string;
  const cleanup: Array<() => Promise<unknown>> = [];

  type Result = { status: number; body: { data?: Record<string, unknown> | null; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> } };
  const post = async (token: string | undefined, body: string): Promise<Result> => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${url}/graphql`, { method: "POST", headers, body });
    return { status: response.status, body: (await response.json()) as Result["body"] };
  };
  const gql = (token: string, query: string, variables?: Record<string, unknown>) => post(token, JSON.stringify({ query, variables }));
  const SEND = "mutation($input: SendCommandInput!) { sendCommand(input: $input) { id } }";
  const sendId = async (input: Record<string, unknown>) => {
    const { body } = await gql(operator, SEND, { input });
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    return (body.data!.sendCommand as { id: string }).id;
  };
  const status = async (id: string) =>
    ((await gql(operator, "query($id: ID!) { command(id: $id) { status result } }", { id })).body.data!.command as { status: string; result: unknown } | null);
  const waitFor = async <T>(probe: () => Promise<T | undefined>, what: string): Promise<T> => {
    for (let i = 0; i < 400; i++) {
      const value = await probe();
      if (value !== undefined) return value;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`${what} did not happen`);
  };
  const metric = async (name: string, labels: Record<string, string>) => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    return text
      .split("\n")
      .filter((line) => line.startsWith(`${name}{`) && wanted.every((label) => line.includes(label)))
      .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0);
  };
  /** A JSON text nested `levels` deep, built as text (JSON.stringify itself overflows on such values). */
  const deepJson = (levels: number) => '{"a":'.repeat(levels) + "1" + "}".repeat(levels);
  const withDeep = (body: Record<string, unknown>, levels: number) => JSON.stringify(body).replace('"__DEEP__"', deepJson(levels));
  const internalErrorsLogged = () => gateway.output().split("\n").filter((line) => line.includes('"msg":"internal error"')).length;

  /** A hand-written device on the embedded broker: answers each command with `reply(id, attempt)` as raw text. */
  const rawDevice = async (deviceId: string, reply: (id: string, attempt: number) => string) => {
    const client = await connectAsync(brokerUrl, { clientId: deviceId, protocolVersion: 4, reconnectPeriod: 0 });
    cleanup.push(() => client.endAsync(true));
    client.on("message", (_topic, payload) => {
      const command = JSON.parse(payload.toString()) as { id: string; attempt: number };
      client.publish(topics.replies(deviceId), reply(command.id, command.attempt), { qos: 1 });
    });
    await client.subscribeAsync(topics.commands(deviceId), { qos: 1 });
    await client.publishAsync(topics.presence(deviceId), '{"online":true}', { qos: 1, retain: true });
    return client;
  };

  before(async () => {
    const mongodbUri = await testStoreUri();
    mongo = await MongoClient.connect(mongodbUri);
    db = mongo.db(uniqueName("hostile10_"));
    brokerPort = await findFreePort();
    brokerUrl = `mqtt://127.0.0.1:${brokerPort}`;
    gateway = await startGatewayProcess(
      {
        MONGODB_URI: mongodbUri,
        MONGODB_DB: db.databaseName,
        MQTT_URL: "",
        MQTT_PORT: String(brokerPort),
        MQTT_TOPIC_PREFIX: prefix,
        MQTT_CLIENT_MESSAGES_PER_SECOND: "5",
        CORS_ORIGINS: "https://console.example",
        JWT_SECRET: secret,
        DEMO: "0",
        NODE_ENV: "",
      },
    );
    url = gateway.url;
    operator = await signToken(secret, { sub: "op", tenant, roles: ["operator"] });
    admin = await signToken(secret, { sub: "admin", tenant, roles: ["admin"] });
    for (const id of Object.values(ids)) {
      const { body } = await gql(admin, "mutation($input: RegisterDeviceInput!) { registerDevice(input: $input) { id } }", { input: { id, site: "s", model: "thermostat" } });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    }
    const thermostat = createSimulatedDevice({ deviceId: ids.th, model: "thermostat", brokerUrl, topicPrefix: prefix, latencyMs: [0, 0] });
    cleanup.push(() => thermostat.stop({ graceful: false }));
    await thermostat.start();
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
    await gateway?.stop();
    await db?.dropDatabase().catch(() => undefined);
    await mongo?.close();
  });

  describe("embedded broker", () => {
    it("a client id that is no registered device is refused at CONNECT and counted", async () => {
      const before = await metric("gateway_mqtt_refused_total", { action: "connect", reason: "unregistered_device" });
      await assert.rejects(connectAsync(brokerUrl, { clientId: uniqueName("stranger-"), protocolVersion: 4, reconnectPeriod: 0 }), /Not authorized/i);
      assert.equal(await metric("gateway_mqtt_refused_total", { action: "connect", reason: "unregistered_device" }), before + 1);
    });

    it("a registered device flooding its replies topic is disconnected and counted; another device's command still succeeds", async () => {
      const flooder = await connectAsync(brokerUrl, { clientId: ids.flood, protocolVersion: 4, reconnectPeriod: 0 });
      cleanup.push(() => flooder.endAsync(true));
      const closed = new Promise<void>((resolve) => flooder.stream.once("close", () => resolve()));
      for (let i = 0; i < 2000 && !flooder.stream.destroyed; i++) {
        flooder.publish(topics.replies(ids.flood), JSON.stringify({ id: randomUUID(), status: "DELIVERED" }), { qos: 0 });
      }
      await closed;
      assert.ok((await metric("gateway_mqtt_refused_total", { action: "publish", reason: "rate_limited" })) >= 1);
      const id = await sendId({ deviceId: ids.th, type: "thermostat.setTemperature", payload: { celsius: 20 } });
      await waitFor(async () => ((await status(id))?.status === "SUCCEEDED" ? true : undefined), "the command's success");
    });

    it("five sockets announcing 200 MB CONNECTs are closed from the fixed header, without waiting for the body", async () => {
      const announce = fixedHeader(0x10, 200 * 1024 * 1024);
      const closedAll = await Promise.all(
        Array.from({ length: 5 }, () =>
          new Promise<boolean>((resolve) => {
            const socket = net.connect(brokerPort, "127.0.0.1", () => socket.write(announce));
            const timer = setTimeout(() => (socket.destroy(), resolve(false)), 10_000);
            socket.on("error", () => undefined);
            socket.on("close", () => (clearTimeout(timer), resolve(true)));
          }),
        ),
      );
      assert.deepEqual(closedAll, [true, true, true, true, true]);
      assert.ok((await metric("gateway_mqtt_refused_total", { action: "packet", reason: "oversized" })) >= 5);
    });

    it("a retained message on anything but the device's own presence is refused (the connection closed) and counted", async () => {
      const device = await connectAsync(brokerUrl, { clientId: ids.raw, protocolVersion: 4, reconnectPeriod: 0 });
      const closed = new Promise<void>((resolve) => device.stream.once("close", () => resolve()));
      device.publish(topics.telemetry(ids.raw), JSON.stringify({ pad: "x".repeat(200_000) }), { qos: 1, retain: true });
      await closed;
      assert.ok((await metric("gateway_mqtt_refused_total", { action: "publish", reason: "retain_not_allowed" })) >= 1);
    });
  });

  describe("shapes and strings", () => {
    it("sendCommand with a payload nested 10,000 deep: BAD_USER_INPUT on payload, and no internal error logged", async () => {
      const logged = internalErrorsLogged();
      const stored = await db.collection("commands").countDocuments();
      const r = await post(operator, withDeep({ query: SEND, variables: { input: { deviceId: ids.th, type: "thermostat.setTemperature", payload: "__DEEP__" } } }, 10_000));
      assert.deepEqual([r.body.errors?.[0]?.extensions?.code, r.body.errors?.[0]?.extensions?.field], ["BAD_USER_INPUT", "payload"]);
      assert.equal(await db.collection("commands").countDocuments(), stored);
      assert.equal(internalErrorsLogged(), logged);
    });

    it("createRule with when or commandPayload nested 10,000 deep: BAD_USER_INPUT on that field", async () => {
      const query = "mutation($input: RuleInput!) { createRule(input: $input) { id } }";
      const base = { name: "deep", commandType: "device.reboot" };
      const when = await post(admin, withDeep({ query, variables: { input: { ...base, when: "__DEEP__" } } }, 10_000));
      assert.deepEqual([when.body.errors?.[0]?.extensions?.code, when.body.errors?.[0]?.extensions?.field], ["BAD_USER_INPUT", "when"]);
      const payload = await post(admin, withDeep({ query, variables: { input: { ...base, when: { t: { $gt: 1 } }, commandPayload: "__DEEP__" } } }, 10_000));
      assert.deepEqual([payload.body.errors?.[0]?.extensions?.code, payload.body.errors?.[0]?.extensions?.field], ["BAD_USER_INPUT", "commandPayload"]);
      assert.equal(await db.collection("rules").countDocuments(), 0);
    });

    it("over WebSocket: the same deep payload is BAD_USER_INPUT (no stack overflow message), validation errors carry their code", async () => {
      const socket = new WebSocket(`${url.replace("http", "ws")}/graphql`, "graphql-transport-ws");
      cleanup.push(async () => socket.close());
      const messages: Array<{ id?: string; type: string; payload?: unknown }> = [];
      await new Promise<void>((resolve, reject) => {
        socket.on("open", () => socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${operator}` } })));
        socket.on("message", (data) => {
          const message = JSON.parse(data.toString());
          if (message.type === "connection_ack") resolve();
          else messages.push(message);
        });
        socket.on("error", reject);
      });
      const answer = (id: string) => waitFor(async () => messages.find((m) => m.id === id && m.type !== "complete"), `answer to ${id}`);
      socket.send(withDeep({ id: "deep", type: "subscribe", payload: { query: SEND, variables: { input: { deviceId: ids.th, type: "thermostat.setTemperature", payload: "__DEEP__" } } } }, 10_000));
      const deep = JSON.stringify(await answer("deep"));
      assert.match(deep, /"code":"BAD_USER_INPUT"/);
      assert.match(deep, /"field":"payload"/);
      assert.doesNotMatch(deep, /call stack/);
      socket.send(JSON.stringify({ id: "invalid", type: "subscribe", payload: { query: "{ noSuchField }" } }));
      assert.match(JSON.stringify(await answer("invalid")), /"code":"GRAPHQL_VALIDATION_FAILED"/);
    });

    it("a subscription by HTTP POST and an APQ hash that does not match: client errors (HTTP 400, BAD_REQUEST), not logged as internal", async () => {
      const logged = internalErrorsLogged();
      const subscription = await gql(operator, "subscription { alertRaised { id } }");
      assert.deepEqual([subscription.status, subscription.body.errors?.[0]?.extensions?.code], [400, "BAD_REQUEST"]);
      const apq = await post(operator, JSON.stringify({ query: "{ commandTypes { name } }", extensions: { persistedQuery: { version: 1, sha256Hash: "0".repeat(64) } } }));
      assert.deepEqual([apq.status, apq.body.errors?.[0]?.extensions?.code], [400, "BAD_REQUEST"]);
      assert.equal(internalErrorsLogged(), logged);
    });

    it("idempotency keys and ids with lone surrogates: BAD_USER_INPUT on the field, nothing stored", async () => {
      const stored = await db.collection("commands").countDocuments();
      for (const key of ["k\ud800", "k\udbff"]) {
        const r = await gql(operator, SEND, { input: { deviceId: ids.th, type: "device.reboot", idempotencyKey: key } });
        assert.deepEqual([r.body.errors?.[0]?.extensions?.code, r.body.errors?.[0]?.extensions?.field], ["BAD_USER_INPUT", "idempotencyKey"]);
      }
      const id = await gql(operator, SEND, { input: { deviceId: `${ids.th}\udc00`, type: "device.reboot" } });
      assert.deepEqual([id.body.errors?.[0]?.extensions?.code, id.body.errors?.[0]?.extensions?.field], ["BAD_USER_INPUT", "deviceId"]);
      const name = await gql(admin, 'mutation($n: String!) { createApiKey(name: $n, commandTypes: ["device.reboot"]) { id } }', { n: "k\ud800" });
      assert.deepEqual([name.body.errors?.[0]?.extensions?.code, name.body.errors?.[0]?.extensions?.field], ["BAD_USER_INPUT", "name"]);
      assert.equal(await db.collection("commands").countDocuments(), stored);
    });
  });

  describe("CORS", () => {
    const preflight = (origin: string) =>
      fetch(`${url}/graphql`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,authorization" },
      });
    it("a listed origin is allowed (preflight and request), headers but no cookies", async () => {
      const response = await preflight("https://console.example");
      assert.equal(response.headers.get("access-control-allow-origin"), "https://console.example");
      assert.match(response.headers.get("access-control-allow-headers") ?? "", /authorization/);
      assert.equal(response.headers.get("access-control-allow-credentials"), null);
      const post = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { origin: "https://console.example", "content-type": "application/json", authorization: `Bearer ${operator}` },
        body: JSON.stringify({ query: "{ commandTypes { name } }" }),
      });
      assert.equal(post.headers.get("access-control-allow-origin"), "https://console.example");
    });
    it("any other origin gets no CORS headers (the browser refuses)", async () => {
      const response = await preflight("https://evil.example");
      assert.equal(response.headers.get("access-control-allow-origin"), null);
    });
  });

  describe("device results and telemetry", () => {
    it("a result with a NUL in a key is stored (escaped) and read back as sent", async () => {
      const device = await rawDevice(ids.raw, (id, attempt) => JSON.stringify({ id, attempt, status: "SUCCEEDED", result: { "a\u0000b": 1, nested: { "\u0000": "x" } } }));
      try {
        const id = await sendId({ deviceId: ids.raw, type: "device.reboot" });
        const done = await waitFor(async () => {
          const command = await status(id);
          return command?.status === "SUCCEEDED" ? command : undefined;
        }, "SUCCEEDED");
        assert.deepEqual(done.result, { "a\u0000b": 1, nested: { "\u0000": "x" } });
      } finally {
        await device.endAsync(true);
      }
    });

    it("a result nested 8000 deep (under 64 KiB) is refused as malformed and counted; the command is unchanged", async () => {
      const before = await metric("gateway_replies_rejected_total", { reason: "malformed" });
      const deepReply = (id: string, attempt: number) => `{"id":${JSON.stringify(id)},"attempt":${attempt},"status":"SUCCEEDED","result":${deepJson(8000)}}`;
      const device = await rawDevice(ids.raw, deepReply);
      try {
        const id = await sendId({ deviceId: ids.raw, type: "device.reboot", timeoutSeconds: 600 });
        await waitFor(async () => ((await metric("gateway_replies_rejected_total", { reason: "malformed" })) > before ? true : undefined), "the malformed count");
        assert.notEqual((await status(id))?.status, "SUCCEEDED");
      } finally {
        await device.endAsync(true);
      }
    });

    it("telemetry nested 8000 deep is dropped as malformed and counted", async () => {
      const before = await metric("gateway_telemetry_dropped_total", { reason: "malformed" });
      const device = await connectAsync(brokerUrl, { clientId: ids.raw, protocolVersion: 4, reconnectPeriod: 0 });
      try {
        await device.publishAsync(topics.telemetry(ids.raw), deepJson(8000), { qos: 1 });
        await waitFor(async () => ((await metric("gateway_telemetry_dropped_total", { reason: "malformed" })) > before ? true : undefined), "the drop count");
      } finally {
        await device.endAsync(true);
      }
    });
  });
});
