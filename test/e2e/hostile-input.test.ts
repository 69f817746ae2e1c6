import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { SignJWT, UnsecuredJWT } from "jose";
import { MongoClient, type Db } from "mongodb";
import { connectAsync, type MqttClient } from "mqtt";
import WebSocket from "ws";
import { signToken, type TokenClaims } from "../../src/auth/jwt";
import { createSimulatedDevice, DeviceClient } from "../../src/device-sdk";
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
        RATE_LIMIT_MUTATIONS_PER_MINUTE: String(RATE_LIMIT),
        MAX_QUEUED_PER_DEVICE: String(MAX_QUEUED),
        NODE_ENV: "",
      },
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
    // Reboots, not setpoints: each setpoint would supersede the one before it, and the queue would never fill.
    for (let i = 0; i < MAX_QUEUED; i++) await sent(as("adminA"), { deviceId: ids.fullA, type: "device.reboot" });
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
      // All at once, so the bucket (refilled continuously, a token per 60/RATE_LIMIT s) has no time to refill
      // between them; whatever time the burst still takes is allowed for exactly.
      const before = await snapshot();
      const started = Date.now();
      const answers = await Promise.all(Array.from({ length: RATE_LIMIT + 5 }, () => send(burst, thermostatInput())));
      const refills = Math.ceil((Date.now() - started) / ((60 * 1000) / RATE_LIMIT));
      assert.deepEqual(await snapshot(), before, "the store and the devices saw nothing");
      const codes = answers.map((a) => a.body.errors?.[0]?.extensions?.code);
      const forbidden = codes.filter((c) => c === "FORBIDDEN").length;
      assert.deepEqual([...new Set(codes)].sort(), ["FORBIDDEN", "RATE_LIMITED"], "refused by authorization or by the limit, nothing else");
      assert.ok(forbidden >= RATE_LIMIT && forbidden <= RATE_LIMIT + refills, `a minute's worth passes the limit: ${forbidden} of ${answers.length} (${refills} refills)`);
      const r = answers.find((a) => a.body.errors?.[0]?.extensions?.code === "RATE_LIMITED")!;
      assert.ok(Number(r.body.errors![0]!.extensions!.retryAfterSeconds) >= 1);
      assert.equal((await refused(() => send(as("viewerA"), thermostatInput()))).code, "FORBIDDEN");
    });
  });

  // ── Payload limits and device state (issue 15) ──────────────────────────────────────────────
  // Its own admin, so these mutations do not count against the rate limit of the cases above.
  describe("payload limits and device state", () => {
    const setLimit = "mutation($input: PayloadLimitInput!) { setPayloadLimit(input: $input) { id } }";
    const limitsStored = () => db.collection("payload_limits").countDocuments();
    const limitIds: string[] = [];
    let limitsAdmin: Auth;
    let limitsOperator: Auth;
    before(async () => {
      limitsAdmin = { token: await sign({ sub: "admin-a-limits", roles: ["admin"] }) };
      limitsOperator = { token: await sign({ sub: "operator-a-limits", roles: ["operator"] }) };
      secretsSeen.push(limitsAdmin.token!, limitsOperator.token!);
      for (const input of [
        { subject: `apikey:${apiKeyA.id}`, commandType: "valve.open", schema: { properties: { seconds: { maximum: 60 } } } },
        { subject: "role:operator", site: "site-b", commandType: "thermostat.setTemperature", schema: { properties: { celsius: { minimum: 18, maximum: 24 } } } },
      ]) {
        limitIds.push(((await data(limitsAdmin, setLimit, { input })).setPayloadLimit as { id: string }).id);
      }
    });
    after(async () => {
      for (const id of limitIds) await data(limitsAdmin, "mutation($id: ID!) { deletePayloadLimit(id: $id) }", { id });
    });

    it("an API key sending a payload outside its limit: FORBIDDEN with a pointer at the value", async () => {
      const r = await refused(() => send({ apiKey: apiKeyA.key }, { deviceId: ids.vA, type: "valve.open", payload: { seconds: 600 } }));
      assert.deepEqual([r.code, r.extensions.pointer], ["FORBIDDEN", "/seconds"]);
    });
    it("an operator's payload outside its role's limit for the device's site: FORBIDDEN with a pointer at the value", async () => {
      const r = await refused(() => send(limitsOperator, thermostatInput({ deviceId: ids.thA2, payload: { celsius: 30 } })));
      assert.deepEqual([r.code, r.extensions.pointer], ["FORBIDDEN", "/celsius"]);
    });
    it("an operator or an API key setting, deleting or listing limits: FORBIDDEN", async () => {
      const before = await limitsStored();
      const input = { subject: "role:operator", commandType: "valve.open", schema: {} };
      for (const auth of [limitsOperator, { apiKey: apiKeyA.key }]) {
        assert.equal((await refused(() => gql(auth, setLimit, { input }))).code, "FORBIDDEN");
        assert.equal((await refused(() => gql(auth, "mutation($id: ID!) { deletePayloadLimit(id: $id) }", { id: limitIds[0] }))).code, "FORBIDDEN");
        assert.equal((await refused(() => gql(auth, "{ payloadLimits { id } }"))).code, "FORBIDDEN");
      }
      assert.equal(await limitsStored(), before);
    });
    it("another tenant's admin deleting a limit: NOT_FOUND, and the limit still applies", async () => {
      const r = await refused(() => gql(as("adminB"), "mutation($id: ID!) { deletePayloadLimit(id: $id) }", { id: limitIds[0] }));
      assert.equal(r.code, "NOT_FOUND");
      const again = await refused(() => send({ apiKey: apiKeyA.key }, { deviceId: ids.vA, type: "valve.open", payload: { seconds: 61 } }));
      assert.equal(again.code, "FORBIDDEN");
    });
    it("limits that could never be met, are not JSON Schema, or use keywords limits refuse (pattern, $ref): BAD_USER_INPUT on schema, nothing stored", async () => {
      const before = await limitsStored();
      for (const [schema, pointer] of [
        [{ properties: { celsius: { minimum: 36 } } }, "/properties/celsius/minimum"],
        [{ properties: { celsius: { maximum: { $gt: 1 } } } }, ""],
        [{ properties: { celsius: { pattern: "^(a+)+$" } } }, "/properties/celsius/pattern"],
        [{ $ref: "http://example.com/schema" }, "/$ref"],
        [{ description: "x".repeat(10_000) }, ""],
      ] as const) {
        const r = await refused(() => gql(limitsAdmin, setLimit, { input: { subject: "role:viewer", commandType: "thermostat.setTemperature", schema } }));
        assert.deepEqual([r.code, r.extensions.field, r.extensions.pointer], ["BAD_USER_INPUT", "schema", pointer], JSON.stringify(schema).slice(0, 80));
      }
      assert.equal(await limitsStored(), before);
    });
    it("an operator object or an unknown kind as a limit's subject: BAD_USER_INPUT", async () => {
      const before = await limitsStored();
      for (const subject of [{ $gt: "" }, "user:admin-a", "apikey:*", "role:operator\u0000"]) {
        const r = await refused(() => gql(limitsAdmin, setLimit, { input: { subject, commandType: "valve.open", schema: {} } }));
        assert.equal(r.code, "BAD_USER_INPUT", JSON.stringify(subject));
      }
      assert.equal(await limitsStored(), before);
    });
    it("a telemetry state full of operators and dotted keys is stored as data, never interpreted", async () => {
      const state = { $set: { online: false }, "a.b": 1, $where: "sleep(1000)" };
      await thermostat.publishTelemetry({ state });
      for (let i = 0; ; i++) {
        const { device } = (await data(limitsOperator, "query($id: ID!) { device(id: $id) { online reported } }", { id: ids.thA })) as {
          device: { online: boolean; reported: Record<string, unknown> };
        };
        if (device.reported.$where !== undefined) {
          const { $set, "a.b": ab, $where } = device.reported;
          assert.deepEqual({ online: device.online, state: { $set, "a.b": ab, $where } }, { online: true, state });
          break;
        }
        assert.ok(i < 200, "the telemetry state was never stored");
        await new Promise((r) => setTimeout(r, 50));
      }
    });
  });

  describe("scheduled commands (notBefore)", () => {
    it("a notBefore more than 30 days ahead: BAD_USER_INPUT on notBefore, nothing stored", async () => {
      const notBefore = new Date(Date.now() + 31 * 86_400_000).toISOString();
      const r = await refused(() => send(as("operatorA"), thermostatInput({ notBefore })));
      assert.deepEqual([r.code, r.extensions.field], ["BAD_USER_INPUT", "notBefore"]);
    });
    it("a notBefore that is not a date-time (words, an impossible date, a number, an operator object, empty): BAD_USER_INPUT", async () => {
      for (const notBefore of ["tomorrow", "2026-02-30T25:00:00Z", 1_900_000_000_000, { $gt: "" }, "", "9999999-01-01T00:00:00Z"]) {
        const r = await refused(() => send(as("operatorA"), thermostatInput({ notBefore })));
        assert.equal(r.code, "BAD_USER_INPUT", JSON.stringify(notBefore));
      }
    });
    it("a scheduled command of a type the caller may not send: FORBIDDEN at once, not when it falls due", async () => {
      const notBefore = new Date(Date.now() + 3_600_000).toISOString();
      const r = await refused(() => send({ apiKey: apiKeyA.key }, thermostatInput({ notBefore })));
      assert.equal(r.code, "FORBIDDEN");
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
