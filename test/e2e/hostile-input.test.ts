import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { SignJWT, UnsecuredJWT } from "jose";
import { MongoClient, type Db } from "mongodb";
import { connectAsync, type MqttClient } from "mqtt";
import WebSocket from "ws";
import { signToken, type TokenClaims } from "../../src/auth/jwt";
import { createSimulatedDevice, DeviceClient } from "../../src/device-sdk";
import { findFreePort } from "../../src/embedded/free-port";
import { createTopics } from "../../src/mqtt/topics";
import { startGatewayProcess, type GatewayProcess } from "../kit/process";
import { MOSQUITTO_URL, testStoreUri, uniqueName } from "../kit/store";

/**
 * The hostile-input battery, against the gateway as a process (`node dist/src/main.js`) on the test
 * store and Mosquitto. Every refusal carries the contract's code, and the store and the devices saw
 * nothing: the commands collection is counted before and after, and each simulated device's `received`.
 */

const JWT_SECRET = `hostile-${randomUUID()}-secret`;
const MQTT_PASSWORD = `mqtt-${randomUUID()}`;
const RATE_LIMIT = 40;
const MAX_QUEUED = 3;

interface Response {
  status: number;
  body: { data?: Record<string, unknown> | null; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };
}
type Auth = { token?: string; apiKey?: string; header?: string };

describe("hostile input against the gateway process", () => {
  let gateway: GatewayProcess;
  let url: string;
  let mongo: MongoClient;
  let db: Db;
  const prefix = uniqueName("hostile");
  const topics = createTopics(prefix);
  const tenantA = uniqueName("ta-");
  const tenantB = uniqueName("tb-");
  const tokens: Record<string, string> = {};
  const secretsSeen: string[] = [JWT_SECRET, MQTT_PASSWORD];
  const devices: DeviceClient[] = [];
  const mqttClients: MqttClient[] = [];
  const ids = {
    thA: uniqueName("th-a-"), // thermostat, tenant A, site-a, online
    vA: uniqueName("v-a-"), // valve, tenant A, site-a, online
    thA2: uniqueName("th-a2-"), // thermostat, tenant A, site-b, offline
    rawA: uniqueName("raw-a-"), // thermostat, tenant A, site-a, a hand-written device that answers with $-keys
    fullA: uniqueName("full-a-"), // thermostat, tenant A, site-a, offline: its queue is filled to the cap
    dB: uniqueName("th-b-"), // thermostat, tenant B, online
  };
  let apiKeyA: { id: string; key: string };
  let revokedKey: { id: string; key: string };
  let commandA: string; // SUCCEEDED on thA
  let commandA2: string; // QUEUED on thA2 (site-b)
  let commandB: string; // SUCCEEDED on dB (tenant B)
  let thermostat: DeviceClient;
  let valve: DeviceClient;
  let deviceB: DeviceClient;

  const gql = async (auth: Auth, query: string, variables?: Record<string, unknown>): Promise<Response> => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (auth.token) headers.authorization = `Bearer ${auth.token}`;
    if (auth.header) headers.authorization = auth.header;
    if (auth.apiKey) headers["x-api-key"] = auth.apiKey;
    const response = await fetch(`${url}/graphql`, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
    return { status: response.status, body: (await response.json()) as Response["body"] };
  };
  const data = async (auth: Auth, query: string, variables?: Record<string, unknown>) => {
    const { body } = await gql(auth, query, variables);
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    return body.data!;
  };
  const as = (name: string): Auth => ({ token: tokens[name] });
  const sign = (claims: Partial<TokenClaims> & Record<string, unknown>, expiresIn = "10m") =>
    signToken(JWT_SECRET, { sub: "someone", tenant: tenantA, roles: ["operator"], ...claims } as TokenClaims, expiresIn);
  const send = (auth: Auth, input: Record<string, unknown>) =>
    gql(auth, "mutation($input: SendCommandInput!) { sendCommand(input: $input) { id status } }", { input });
  const thermostatInput = (overrides: Record<string, unknown> = {}) => ({
    deviceId: ids.thA,
    type: "thermostat.setTemperature",
    payload: { celsius: 21 },
    ...overrides,
  });

  /** Waits (polling the API) until the command reaches `status`. */
  const waitForStatus = async (auth: Auth, id: string, status: string) => {
    for (let i = 0; i < 200; i++) {
      const { command } = (await data(auth, "query($id: ID!) { command(id: $id) { status } }", { id })) as { command: { status: string } | null };
      if (command?.status === status) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`command ${id} did not reach ${status}`);
  };

  const commandCount = () => db.collection("commands").countDocuments();
  const snapshot = async () => ({ stored: await commandCount(), received: devices.map((d) => d.received) });

  /** Runs a hostile request and checks nothing was stored and no device received anything. */
  const refused = async (run: () => Promise<Response>): Promise<Response & { code: unknown; extensions: Record<string, unknown> }> => {
    const before = await snapshot();
    const response = await run();
    assert.deepEqual(await snapshot(), before, "the store and the devices saw nothing");
    const extensions = response.body.errors?.[0]?.extensions ?? {};
    const text = JSON.stringify(response.body);
    assert.doesNotMatch(text, /stacktrace|at [\w.]+ \(|node_modules|\/dist\//, "no stack traces or internals in the answer");
    return { ...response, code: extensions.code, extensions };
  };

  /** The rejected-replies counter of /metrics for one reason. */
  const rejected = async (reason: string) => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const match = new RegExp(`gateway_replies_rejected_total\\{reason="${reason}"\\} (\\d+)`).exec(text);
    return match ? Number(match[1]) : 0;
  };
  const waitForRejected = async (reason: string, above: number) => {
    for (let i = 0; i < 200; i++) {
      if ((await rejected(reason)) > above) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`no reply rejected for ${reason}`);
  };

  before(async () => {
    const mongodbUri = await testStoreUri();
    mongo = await MongoClient.connect(mongodbUri);
    db = mongo.db(uniqueName("hostile_"));
    const port = await findFreePort();
    const mqttUrl = new URL(MOSQUITTO_URL);
    mqttUrl.username = "gateway";
    mqttUrl.password = MQTT_PASSWORD;
    gateway = await startGatewayProcess(
      {
        MONGODB_URI: mongodbUri,
        MONGODB_DB: db.databaseName,
        MQTT_URL: mqttUrl.toString(),
        MQTT_TOPIC_PREFIX: prefix,
        JWT_SECRET,
        DEMO: "0",
        LOG_LEVEL: "debug",
        SWEEP_INTERVAL_MS: "100",
        RATE_LIMIT_MUTATIONS_PER_MINUTE: String(RATE_LIMIT),
        MAX_QUEUED_PER_DEVICE: String(MAX_QUEUED),
        NODE_ENV: "",
      },
      port,
    );
    url = gateway.url;

    for (const [name, claims] of Object.entries({
      adminA: { sub: "admin-a", roles: ["admin"] },
      operatorA: { sub: "operator-a", roles: ["operator"] },
      operatorSiteA: { sub: "operator-site-a", roles: ["operator"], sites: ["site-a"] },
      viewerA: { sub: "viewer-a", roles: ["viewer"] },
      adminB: { sub: "admin-b", roles: ["admin"], tenant: tenantB },
      operatorB: { sub: "operator-b", roles: ["operator"], tenant: tenantB },
    })) {
      tokens[name] = await sign(claims as Partial<TokenClaims>);
    }
    secretsSeen.push(...Object.values(tokens));

    const register = (auth: Auth, id: string, site: string, model: string) =>
      data(auth, "mutation($input: RegisterDeviceInput!) { registerDevice(input: $input) { id } }", { input: { id, site, model } });
    await register(as("adminA"), ids.thA, "site-a", "thermostat");
    await register(as("adminA"), ids.vA, "site-a", "valve");
    await register(as("adminA"), ids.thA2, "site-b", "thermostat");
    await register(as("adminA"), ids.rawA, "site-a", "thermostat");
    await register(as("adminA"), ids.fullA, "site-a", "thermostat");
    await register(as("adminB"), ids.dB, "site-a", "thermostat");
    const simulate = async (deviceId: string, model: string) => {
      const device = createSimulatedDevice({ deviceId, model, brokerUrl: MOSQUITTO_URL, topicPrefix: prefix, latencyMs: [0, 0] });
      devices.push(device);
      await device.start();
      return device;
    };
    thermostat = await simulate(ids.thA, "thermostat");
    valve = await simulate(ids.vA, "valve");
    deviceB = await simulate(ids.dB, "thermostat");

    const created = (await data(as("adminA"), 'mutation { createApiKey(name: "partner", commandTypes: ["valve.open"]) { id key } }')) as {
      createApiKey: { id: string; key: string };
    };
    apiKeyA = created.createApiKey;
    const another = (await data(as("adminA"), 'mutation { createApiKey(name: "old partner", commandTypes: ["valve.open"]) { id key } }')) as {
      createApiKey: { id: string; key: string };
    };
    revokedKey = another.createApiKey;
    await data(as("adminA"), "mutation($id: ID!) { revokeApiKey(id: $id) }", { id: revokedKey.id });
    secretsSeen.push(apiKeyA.key, revokedKey.key);

    const sent = async (auth: Auth, input: Record<string, unknown>) => {
      const { body } = await send(auth, input);
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      return (body.data!.sendCommand as { id: string }).id;
    };
    commandA = await sent(as("operatorA"), thermostatInput());
    commandA2 = await sent(as("adminA"), thermostatInput({ deviceId: ids.thA2 }));
    commandB = await sent(as("operatorB"), thermostatInput({ deviceId: ids.dB }));
    await waitForStatus(as("operatorA"), commandA, "SUCCEEDED");
    await waitForStatus(as("operatorB"), commandB, "SUCCEEDED");
    for (let i = 0; i < MAX_QUEUED; i++) await sent(as("adminA"), thermostatInput({ deviceId: ids.fullA }));
  });

  after(async () => {
    await Promise.all(devices.map((d) => d.stop({ graceful: false }).catch(() => undefined)));
    await Promise.all(mqttClients.map((c) => c.endAsync(true).catch(() => undefined)));
    await gateway?.stop();
    await db?.dropDatabase().catch(() => undefined);
    await mongo?.close();
  });

  describe("credentials", () => {
    it("no credentials: UNAUTHENTICATED, HTTP 401", async () => {
      const r = await refused(() => send({}, thermostatInput()));
      assert.deepEqual([r.status, r.code], [401, "UNAUTHENTICATED"]);
    });
    it("a token signed with another secret: UNAUTHENTICATED", async () => {
      const forged = await signToken(`${JWT_SECRET}-other`, { sub: "x", tenant: tenantA, roles: ["admin"] });
      assert.equal((await refused(() => send({ token: forged }, thermostatInput()))).code, "UNAUTHENTICATED");
    });
    it("an expired token: UNAUTHENTICATED", async () => {
      const expired = await sign({ roles: ["admin"] }, "-2m");
      assert.equal((await refused(() => send({ token: expired }, thermostatInput()))).code, "UNAUTHENTICATED");
    });
    it("alg none: UNAUTHENTICATED", async () => {
      const unsigned = new UnsecuredJWT({ sub: "x", tenant: tenantA, roles: ["admin"] }).setExpirationTime("5m").encode();
      assert.equal((await refused(() => send({ token: unsigned }, thermostatInput()))).code, "UNAUTHENTICATED");
    });
    it("HS512 with the right secret (an algorithm not configured): UNAUTHENTICATED", async () => {
      const hs512 = await new SignJWT({ sub: "x", tenant: tenantA, roles: ["admin"] })
        .setProtectedHeader({ alg: "HS512" })
        .setExpirationTime("5m")
        .sign(new TextEncoder().encode(JWT_SECRET));
      assert.equal((await refused(() => send({ token: hs512 }, thermostatInput()))).code, "UNAUTHENTICATED");
    });
    it("a viewer token whose payload was edited to admin: UNAUTHENTICATED", async () => {
      const [header, , signature] = tokens.viewerA!.split(".");
      const payload = Buffer.from(JSON.stringify({ sub: "viewer-a", tenant: tenantA, roles: ["admin"], exp: Math.floor(Date.now() / 1000) + 600 })).toString("base64url");
      assert.equal((await refused(() => send({ token: `${header}.${payload}.${signature}` }, thermostatInput()))).code, "UNAUTHENTICATED");
    });
    it("Basic authorization: UNAUTHENTICATED", async () => {
      const r = await refused(() => send({ header: `Basic ${Buffer.from("admin:admin").toString("base64")}` }, thermostatInput()));
      assert.equal(r.code, "UNAUTHENTICATED");
    });
    it("claims with operators instead of values (tenant, sites): UNAUTHENTICATED", async () => {
      for (const claims of [{ tenant: { $ne: null } }, { sites: [{ $ne: null }] }, { roles: { $in: ["admin"] } }]) {
        const token = await sign(claims as Record<string, unknown>);
        assert.equal((await refused(() => send({ token }, thermostatInput()))).code, "UNAUTHENTICATED", JSON.stringify(claims));
      }
    });
    it("an unknown API key, and an API key that is an operator: UNAUTHENTICATED", async () => {
      const unknownKey = `igk_${Buffer.alloc(32, 7).toString("base64url")}`;
      assert.equal((await refused(() => send({ apiKey: unknownKey }, { deviceId: ids.vA, type: "valve.open", payload: { seconds: 5 } }))).code, "UNAUTHENTICATED");
      assert.equal((await refused(() => send({ apiKey: '{"$ne":null}' }, { deviceId: ids.vA, type: "valve.open", payload: { seconds: 5 } }))).code, "UNAUTHENTICATED");
    });
    it("a revoked API key: FORBIDDEN, HTTP 403", async () => {
      const r = await refused(() => send({ apiKey: revokedKey.key }, { deviceId: ids.vA, type: "valve.open", payload: { seconds: 5 } }));
      assert.deepEqual([r.status, r.code], [403, "FORBIDDEN"]);
    });
  });

  describe("WebSocket", () => {
    /** Opens a graphql-ws socket, sends connection_init with `payload`, and resolves with the close code. */
    const closeCode = (payload: Record<string, unknown>, afterAck?: () => Promise<unknown>) =>
      new Promise<number>((resolveCode, reject) => {
        const socket = new WebSocket(`${url.replace("http", "ws")}/graphql`, "graphql-transport-ws");
        socket.on("open", () => socket.send(JSON.stringify({ type: "connection_init", payload })));
        socket.on("message", (message) => {
          if (JSON.parse(message.toString()).type === "connection_ack") afterAck?.().catch(reject);
        });
        socket.on("close", (code) => resolveCode(code));
        socket.on("error", reject);
      });

    it("without credentials: closed with 4401", async () => assert.equal(await closeCode({}), 4401));
    it("with a forged token or a non-string key: closed with 4401", async () => {
      const forged = await signToken(`${JWT_SECRET}-other`, { sub: "x", tenant: tenantA, roles: ["admin"] });
      assert.equal(await closeCode({ authorization: `Bearer ${forged}` }), 4401);
      assert.equal(await closeCode({ apiKey: { $ne: null } }), 4401);
    });
    it("with a revoked API key: closed with 4403", async () => assert.equal(await closeCode({ apiKey: revokedKey.key }), 4403));
    it("open with an API key that is then revoked: closed with 4403", async () => {
      const { createApiKey: key } = (await data(as("adminA"), 'mutation { createApiKey(name: "short-lived", commandTypes: ["valve.open"]) { id key } }')) as {
        createApiKey: { id: string; key: string };
      };
      secretsSeen.push(key.key);
      const code = await closeCode({ apiKey: key.key }, () => data(as("adminA"), "mutation($id: ID!) { revokeApiKey(id: $id) }", { id: key.id }));
      assert.equal(code, 4403);
    });
  });

  describe("tenants and sites", () => {
    it("sending to another tenant's device: NOT_FOUND, like a missing one", async () => {
      assert.equal((await refused(() => send(as("operatorA"), thermostatInput({ deviceId: ids.dB })))).code, "NOT_FOUND");
    });
    it("another tenant's command, device and lists: null and empty", async () => {
      const r = await refused(() =>
        gql(
          as("adminA"),
          `query($c: ID!, $d: ID!) { command(id: $c) { id } device(id: $d) { id }
             commands(filter: { deviceId: $d }) { edges { node { id } } } devices(first: 200) { edges { node { id } } } }`,
          { c: commandB, d: ids.dB },
        ),
      );
      assert.equal(r.code, undefined);
      assert.deepEqual(
        { command: r.body.data!.command, device: r.body.data!.device, commands: r.body.data!.commands },
        { command: null, device: null, commands: { edges: [] } },
      );
      assert.ok(!JSON.stringify(r.body.data!.devices).includes(ids.dB));
    });
    it("an operator of site-a sending to a site-b device: FORBIDDEN", async () => {
      assert.equal((await refused(() => send(as("operatorSiteA"), thermostatInput({ deviceId: ids.thA2 })))).code, "FORBIDDEN");
    });
    it("an operator of site-a reading a site-b command: null", async () => {
      const r = await refused(() => gql(as("operatorSiteA"), "query($id: ID!) { command(id: $id) { id } }", { id: commandA2 }));
      assert.equal(r.body.data!.command, null);
    });
    it("another tenant's admin revoking a key: NOT_FOUND, and the key still works", async () => {
      const r = await refused(() => gql(as("adminB"), "mutation($id: ID!) { revokeApiKey(id: $id) }", { id: apiKeyA.id }));
      assert.equal(r.code, "NOT_FOUND");
      await data({ apiKey: apiKeyA.key }, "{ devices { edges { node { id } } } }");
    });
  });

  describe("roles and API keys", () => {
    it("a viewer sending: FORBIDDEN", async () => {
      assert.equal((await refused(() => send(as("viewerA"), thermostatInput()))).code, "FORBIDDEN");
    });
    it("a viewer registering a device: FORBIDDEN", async () => {
      const registered = await db.collection("devices").countDocuments();
      const r = await refused(() =>
        gql(as("viewerA"), "mutation($input: RegisterDeviceInput!) { registerDevice(input: $input) { id } }", { input: { id: uniqueName("x-"), site: "s", model: "valve" } }),
      );
      assert.equal(r.code, "FORBIDDEN");
      assert.equal(await db.collection("devices").countDocuments(), registered);
    });
    it("an operator or an API key creating an API key, a viewer revoking one, an operator listing them: FORBIDDEN", async () => {
      const create = 'mutation { createApiKey(name: "mine", commandTypes: ["valve.open"]) { id key } }';
      const keys = await db.collection("api_keys").countDocuments();
      assert.equal((await refused(() => gql(as("operatorA"), create))).code, "FORBIDDEN");
      assert.equal((await refused(() => gql({ apiKey: apiKeyA.key }, create))).code, "FORBIDDEN");
      assert.equal((await refused(() => gql(as("viewerA"), "mutation($id: ID!) { revokeApiKey(id: $id) }", { id: apiKeyA.id }))).code, "FORBIDDEN");
      assert.equal((await refused(() => gql(as("operatorA"), "{ apiKeys { id name } }"))).code, "FORBIDDEN");
      assert.equal(await db.collection("api_keys").countDocuments(), keys);
    });
    it("an API key sending a type outside its list: FORBIDDEN", async () => {
      assert.equal((await refused(() => send({ apiKey: apiKeyA.key }, thermostatInput()))).code, "FORBIDDEN");
      assert.equal((await refused(() => send({ apiKey: apiKeyA.key }, { deviceId: ids.vA, type: "valve.close", payload: {} }))).code, "FORBIDDEN");
    });
    it("an API key reading a command of a type outside its list: null", async () => {
      const r = await refused(() => gql({ apiKey: apiKeyA.key }, "query($id: ID!) { command(id: $id) { id } }", { id: commandA }));
      assert.equal(r.body.data!.command, null);
    });
    it("createApiKey with an unknown command type: BAD_USER_INPUT on commandTypes", async () => {
      const r = await refused(() => gql(as("adminA"), 'mutation { createApiKey(name: "p", commandTypes: ["valve.open", "door.unlock"]) { id key } }'));
      assert.deepEqual([r.code, r.extensions.field], ["BAD_USER_INPUT", "commandTypes"]);
    });
  });

  describe("operator injection", () => {
    it("an operator object as an ID variable: BAD_USER_INPUT", async () => {
      const r = await refused(() => gql(as("adminA"), "query($id: ID!) { command(id: $id) { id } }", { id: { $ne: null } }));
      assert.equal(r.code, "BAD_USER_INPUT");
    });
    it("operator objects in the command filter: BAD_USER_INPUT", async () => {
      for (const filter of [{ deviceId: { $gt: "" } }, { type: { $regex: ".*" } }, { status: { $ne: "QUEUED" } }, { since: { $gt: 0 } }]) {
        const r = await refused(() => gql(as("adminA"), "query($f: CommandFilter) { commands(filter: $f) { edges { node { id } } } }", { f: filter }));
        assert.equal(r.code, "BAD_USER_INPUT", JSON.stringify(filter));
      }
    });
    it("an operator object as deviceId or idempotencyKey: BAD_USER_INPUT", async () => {
      assert.equal((await refused(() => send(as("operatorA"), thermostatInput({ deviceId: { $ne: null } })))).code, "BAD_USER_INPUT");
      assert.equal((await refused(() => send(as("operatorA"), thermostatInput({ idempotencyKey: { $ne: null } })))).code, "BAD_USER_INPUT");
    });
    it("an operator as a string id is just a string: null", async () => {
      const r = await refused(() => gql(as("adminA"), 'query { command(id: "{\\"$ne\\":null}") { id } device(id: "{\\"$gt\\":\\"\\"}") { id } }'));
      assert.deepEqual(r.body.data, { command: null, device: null });
    });
    it("operators inside a payload: BAD_USER_INPUT with a pointer", async () => {
      const r = await refused(() => send(as("operatorA"), thermostatInput({ payload: { celsius: { $gt: 0 } } })));
      assert.deepEqual([r.code, r.extensions.pointer], ["BAD_USER_INPUT", "/celsius"]);
      const extra = await refused(() => send(as("operatorA"), thermostatInput({ payload: { celsius: 21, $where: "sleep(1000)" } })));
      assert.deepEqual([extra.code, extra.extensions.pointer], ["BAD_USER_INPUT", "/$where"]);
    });
    it("a device result full of operators is stored as data, never interpreted", async () => {
      const evil = { $set: { status: "FAILED" }, $where: "sleep(1000)", nested: { $gt: "", "a.b": 1 } };
      const raw = new DeviceClient({ deviceId: ids.rawA, brokerUrl: MOSQUITTO_URL, topicPrefix: prefix, handler: () => ({ result: evil }) });
      devices.push(raw);
      await raw.start();
      const { body } = await send(as("operatorA"), thermostatInput({ deviceId: ids.rawA }));
      const id = (body.data!.sendCommand as { id: string }).id;
      await waitForStatus(as("operatorA"), id, "SUCCEEDED");
      const { command } = (await data(as("operatorA"), "query($id: ID!) { command(id: $id) { status result } }", { id })) as {
        command: { status: string; result: unknown };
      };
      assert.deepEqual(command, { status: "SUCCEEDED", result: evil });
      assert.equal(await db.collection("commands").countDocuments({ status: "FAILED" }), 0);
    });
  });

  describe("sizes and shapes", () => {
    it("a body over 100 KiB: HTTP 413", async () => {
      const r = await refused(async () => {
        const response = await fetch(`${url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${tokens.operatorA}` },
          body: JSON.stringify({ query: "mutation { x }", variables: { pad: "x".repeat(200_000) } }),
        });
        return { status: response.status, body: (await response.json()) as Response["body"] };
      });
      assert.deepEqual([r.status, r.code], [413, "BAD_USER_INPUT"]);
    });
    it("a payload over 16 KiB: BAD_USER_INPUT on payload", async () => {
      const r = await refused(() => send(as("operatorA"), thermostatInput({ payload: { celsius: 21, pad: "x".repeat(20_000) } })));
      assert.deepEqual([r.code, r.extensions.field], ["BAD_USER_INPUT", "payload"]);
    });
    it("a 10,000-character device id, idempotency key, site and key name: BAD_USER_INPUT", async () => {
      const huge = "a".repeat(10_000);
      assert.equal((await refused(() => send(as("operatorA"), thermostatInput({ deviceId: huge })))).extensions.field, "deviceId");
      assert.equal((await refused(() => send(as("operatorA"), thermostatInput({ idempotencyKey: huge })))).extensions.field, "idempotencyKey");
      const site = await refused(() =>
        gql(as("adminA"), "mutation($input: RegisterDeviceInput!) { registerDevice(input: $input) { id } }", { input: { id: uniqueName("x-"), site: huge, model: "valve" } }),
      );
      assert.deepEqual([site.code, site.extensions.field], ["BAD_USER_INPUT", "site"]);
      const name = await refused(() => gql(as("adminA"), "mutation($n: String!) { createApiKey(name: $n, commandTypes: [\"valve.open\"]) { id } }", { n: huge }));
      assert.deepEqual([name.code, name.extensions.field], ["BAD_USER_INPUT", "name"]);
    });
    it("a document of more than 5,000 tokens: refused before parsing (GRAPHQL_PARSE_FAILED)", async () => {
      const r = await refused(() => gql(as("adminA"), `{ ${"__typename ".repeat(6_000)} }`));
      assert.deepEqual([r.status, r.code], [400, "GRAPHQL_PARSE_FAILED"]);
    });
    it("a query deeper than 10: GRAPHQL_VALIDATION_FAILED", async () => {
      const chain = "ofType { ".repeat(12) + "name" + " }".repeat(12);
      const r = await refused(() => gql(as("adminA"), `{ __type(name: "Command") { fields { type { ${chain} } } } }`));
      assert.deepEqual([r.status, r.code], [400, "GRAPHQL_VALIDATION_FAILED"]);
    });
    it("16 aliased sendCommands in one mutation: GRAPHQL_VALIDATION_FAILED, none stored", async () => {
      const fields = Array.from({ length: 16 }, (_, i) => `s${i}: sendCommand(input: $input) { id }`).join(" ");
      const r = await refused(() => gql(as("operatorA"), `mutation($input: SendCommandInput!) { ${fields} }`, { input: thermostatInput() }));
      assert.deepEqual([r.status, r.code], [400, "GRAPHQL_VALIDATION_FAILED"]);
    });
    it("five pages of 200 commands with their history and device in one query (cost): GRAPHQL_VALIDATION_FAILED", async () => {
      const node = "id deviceId type payload status source issuedBy attempt createdAt updatedAt history { status at actor detail } device { id site model online }";
      const page = (alias: string) => `${alias}: commands(first: $n) { edges { node { ${node} } } }`;
      const r = await refused(() => gql(as("adminA"), `query($n: Int) { ${page("a")} ${page("b")} ${page("c")} ${page("d")} ${page("e")} }`, { n: 200 }));
      assert.deepEqual([r.status, r.code], [400, "GRAPHQL_VALIDATION_FAILED"]);
    });
    it("first out of range: BAD_USER_INPUT on first (100,000 is already over the cost limit)", async () => {
      const huge = await refused(() => gql(as("adminA"), "query($n: Int) { commands(first: $n) { edges { cursor } } }", { n: 100_000 }));
      assert.equal(huge.code, "GRAPHQL_VALIDATION_FAILED");
      for (const first of [201, 0, -1]) {
        const r = await refused(() => gql(as("adminA"), "query($n: Int) { commands(first: $n) { edges { cursor } } }", { n: first }));
        assert.deepEqual([r.code, r.extensions.field], ["BAD_USER_INPUT", "first"], String(first));
      }
    });
    it("a batch of operations in one request: refused (HTTP 400)", async () => {
      const r = await refused(async () => {
        const response = await fetch(`${url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${tokens.operatorA}` },
          body: JSON.stringify([{ query: "{ commandTypes { name } }" }, { query: "{ commandTypes { name } }" }]),
        });
        return { status: response.status, body: (await response.json()) as Response["body"] };
      });
      assert.equal(r.status, 400);
    });
  });

  describe("cursors", () => {
    const commandsAfter = (after: string) => gql(as("adminA"), "query($a: String) { commands(after: $a) { edges { cursor } } }", { a: after });
    it("garbage: BAD_USER_INPUT on after", async () => {
      const r = await refused(() => commandsAfter("not-a-cursor!!"));
      assert.deepEqual([r.code, r.extensions.field], ["BAD_USER_INPUT", "after"]);
    });
    it("a cursor carrying an operator: BAD_USER_INPUT on after", async () => {
      const r = await refused(() => commandsAfter(Buffer.from(JSON.stringify([{ $gt: 0 }, { $ne: null }])).toString("base64url")));
      assert.deepEqual([r.code, r.extensions.field], ["BAD_USER_INPUT", "after"]);
    });
    it("a device list's cursor given to the command list: BAD_USER_INPUT on after", async () => {
      const devicesPage = (await data(as("adminA"), "{ devices(first: 1) { edges { cursor } } }")) as { devices: { edges: Array<{ cursor: string }> } };
      const r = await refused(() => commandsAfter(devicesPage.devices.edges[0]!.cursor));
      assert.deepEqual([r.code, r.extensions.field], ["BAD_USER_INPUT", "after"]);
    });
  });

  describe("device replies (published to Mosquitto as a device)", () => {
    let spoofer: MqttClient;
    before(async () => {
      // Mosquitto on 1883 has no ACL: the gateway's own checks are all that stands here.
      spoofer = await connectAsync(MOSQUITTO_URL, { clientId: uniqueName("spoofer-"), protocolVersion: 4, reconnectPeriod: 0 });
      mqttClients.push(spoofer);
    });
    /** Publishes a forged reply and waits until the gateway counted it as rejected for `reason`; the command is unchanged. */
    const forged = async (deviceId: string, payload: string | Buffer, reason: string) => {
      const before = await db.collection("commands").find({}, { projection: { status: 1, updatedAt: 1, result: 1 } }).sort({ _id: 1 }).toArray();
      const count = await rejected(reason);
      await spoofer.publishAsync(topics.replies(deviceId), payload, { qos: 1 });
      await waitForRejected(reason, count);
      const afterwards = await db.collection("commands").find({}, { projection: { status: 1, updatedAt: 1, result: 1 } }).sort({ _id: 1 }).toArray();
      assert.deepEqual(afterwards, before, "no command changed");
    };
    it("a reply from another device than the command's: rejected (wrong_device)", async () =>
      forged(ids.vA, JSON.stringify({ id: commandA2, status: "SUCCEEDED", result: { celsius: 99 } }), "wrong_device"));
    it("a reply from another tenant's device: rejected (wrong_device)", async () =>
      forged(ids.dB, JSON.stringify({ id: commandA, status: "FAILED", error: { code: "X" } }), "wrong_device"));
    it("a reply for an unknown command: rejected (unknown_command)", async () =>
      forged(ids.thA, JSON.stringify({ id: randomUUID(), status: "DELIVERED" }), "unknown_command"));
    it("a reply whose id is an operator: rejected (malformed)", async () =>
      forged(ids.thA, JSON.stringify({ id: { $ne: null }, status: "SUCCEEDED", result: {} }), "malformed"));
    it("a reply that is not JSON, or has an unknown status: rejected (malformed)", async () => {
      await forged(ids.thA, "{not json", "malformed");
      await forged(ids.thA, JSON.stringify({ id: commandA2, status: "QUEUED" }), "malformed");
    });
    it("a reply over 64 KiB: rejected (oversized)", async () =>
      forged(ids.thA2, JSON.stringify({ id: commandA2, status: "SUCCEEDED", result: { pad: "x".repeat(70_000) } }), "oversized"));
    it("a reply for another attempt: rejected (stale_attempt)", async () =>
      forged(ids.thA, JSON.stringify({ id: commandA, status: "FAILED", error: { code: "X" }, attempt: 7 }), "stale_attempt"));
    it("a reply to a command already SUCCEEDED: rejected (not_allowed_in_state)", async () =>
      forged(ids.thA, JSON.stringify({ id: commandA, status: "FAILED", error: { code: "X" } }), "not_allowed_in_state"));
  });

  describe("idempotency keys", () => {
    const key = uniqueName("idem-");
    before(async () => {
      const { body } = await send(as("operatorA"), thermostatInput({ idempotencyKey: key, payload: { celsius: 20 } }));
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      await waitForStatus(as("operatorA"), (body.data!.sendCommand as { id: string }).id, "SUCCEEDED");
    });
    it("the same key with another payload: CONFLICT on idempotencyKey", async () => {
      const r = await refused(() => send(as("operatorA"), thermostatInput({ idempotencyKey: key, payload: { celsius: 30 } })));
      assert.deepEqual([r.code, r.extensions.field], ["CONFLICT", "idempotencyKey"]);
    });
    it("the same key for another device or type: CONFLICT", async () => {
      assert.equal((await refused(() => send(as("operatorA"), thermostatInput({ idempotencyKey: key, deviceId: ids.thA2, payload: { celsius: 20 } })))).code, "CONFLICT");
      assert.equal((await refused(() => send(as("operatorA"), { deviceId: ids.thA, type: "device.reboot", idempotencyKey: key }))).code, "CONFLICT");
    });
    it("the same key and input: the same command, nothing new stored or sent", async () => {
      const first = await refused(() => send(as("operatorA"), thermostatInput({ idempotencyKey: key, payload: { celsius: 20 } })));
      const again = await refused(() => send(as("operatorA"), thermostatInput({ idempotencyKey: key, payload: { celsius: 20 } })));
      assert.equal(first.code, undefined);
      assert.equal((again.body.data!.sendCommand as { id: string }).id, (first.body.data!.sendCommand as { id: string }).id);
    });
  });

  describe("rate limits", () => {
    it(`a device with ${MAX_QUEUED} queued commands takes no more: RATE_LIMITED on deviceId with retryAfterSeconds`, async () => {
      const r = await refused(() => send(as("adminA"), thermostatInput({ deviceId: ids.fullA })));
      assert.deepEqual([r.code, r.extensions.field], ["RATE_LIMITED", "deviceId"]);
      assert.ok(Number(r.extensions.retryAfterSeconds) >= 1);
    });
    it(`more than ${RATE_LIMIT} mutations a minute from one principal: RATE_LIMITED with retryAfterSeconds; others unaffected`, async () => {
      const burst = { token: await sign({ sub: "burst", roles: ["viewer"] }) };
      for (let i = 0; i < RATE_LIMIT; i++) assert.equal((await send(burst, thermostatInput())).body.errors?.[0]?.extensions?.code, "FORBIDDEN");
      const r = await refused(() => send(burst, thermostatInput()));
      assert.equal(r.code, "RATE_LIMITED");
      assert.ok(Number(r.extensions.retryAfterSeconds) >= 1);
      assert.equal((await refused(() => send(as("viewerA"), thermostatInput()))).code, "FORBIDDEN");
    });
  });

  describe("afterwards", () => {
    it("each device received exactly the commands sent to it legitimately, in order", async () => {
      // Anything stored by mistake would have been delivered before these, oldest first.
      for (const [deviceId, input] of [
        [ids.thA, thermostatInput()],
        [ids.vA, { deviceId: ids.vA, type: "valve.open", payload: { seconds: 5 } }],
        [ids.dB, thermostatInput({ deviceId: ids.dB })],
      ] as const) {
        const auth = deviceId === ids.dB ? as("operatorB") : deviceId === ids.vA ? { apiKey: apiKeyA.key } : as("operatorA");
        const { body } = await send(auth, input);
        assert.equal(body.errors, undefined, JSON.stringify(body.errors));
        await waitForStatus(auth, (body.data!.sendCommand as { id: string }).id, "SUCCEEDED");
      }
      // thA: commandA, the idempotent one, this one; vA: this one; dB: commandB, this one.
      assert.deepEqual([thermostat.received, valve.received, deviceB.received], [3, 1, 2]);
    });
    it("no secret (JWT secret, tokens, API keys, broker password) ever appeared in the logs", () => {
      const output = gateway.output();
      assert.ok(output.length > 1000, "the gateway logged at debug level");
      for (const secret of secretsSeen) assert.ok(!output.includes(secret), `a secret leaked into the logs: ${secret.slice(0, 12)}…`);
    });
  });
});

/**
 * Issue 10, what an outside tester broke: the same battery style against a gateway process with its
 * embedded broker (aedes), so the broker's own defences are part of what is tested.
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
        SWEEP_INTERVAL_MS: "100",
        NODE_ENV: "",
      },
      await findFreePort(),
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
      const announce = Buffer.from([0x10, 0x80, 0x80, 0x80, 0x64]); // remaining length 200 × 2^21 bytes
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
