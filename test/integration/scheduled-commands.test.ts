import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { signToken } from "../../src/auth/jwt";
import { createSimulatedDevice } from "../../src/device-sdk";
import { CancelCommandDocument, CommandDocument, RegisterDeviceDocument, SendCommandDocument } from "../generated/graphql";
import { startTestGateway, TEST_JWT_SECRET, waitForStatus, type TestGateway } from "../kit/gateway";
import { GraphQLTestClient } from "../kit/graphql-client";
import { startGatewayProcess, type GatewayProcess } from "../kit/process";
import { MOSQUITTO_URL, testStoreUri, uniqueName } from "../kit/store";

const SETPOINT = "thermostat.setTemperature";
const inSeconds = (seconds: number) => new Date(Date.now() + seconds * 1000).toISOString();

describe("scheduled commands (notBefore, CONTRACT §6.2)", () => {
  let kit: TestGateway;
  let operator: GraphQLTestClient;
  before(async () => {
    kit = await startTestGateway();
    operator = await kit.as("operator");
  });
  after(() => kit.stop());

  it("a command scheduled 3 s ahead is stored QUEUED at once and SENT not before notBefore", async () => {
    const deviceId = uniqueName("th-");
    await kit.device(deviceId, "thermostat");
    const notBefore = inSeconds(3);
    const { sendCommand } = await operator.data(SendCommandDocument, { input: { deviceId, type: SETPOINT, payload: { celsius: 21 }, notBefore } });
    assert.equal(sendCommand.status, "QUEUED");
    assert.equal(sendCommand.notBefore, notBefore);
    // Its expiry (the type's default, 3600 s) counts from notBefore.
    assert.equal(Date.parse(sendCommand.expiresAt!), Date.parse(notBefore) + 3_600_000);
    const done = await waitForStatus(operator, sendCommand.id, "SUCCEEDED", 30_000);
    assert.ok(Date.parse(done.sentAt!) >= Date.parse(notBefore), `sent at ${done.sentAt}, notBefore ${notBefore}`);
    assert.deepEqual(done.result, { celsius: 21, setpoint: 21 });
  });

  it("a command not yet due holds back none of the device's later ones; a past notBefore is sent at once", async () => {
    const deviceId = uniqueName("va-");
    await kit.device(deviceId, "valve");
    const { sendCommand: scheduled } = await operator.data(SendCommandDocument, { input: { deviceId, type: "valve.open", payload: { seconds: 5 }, notBefore: inSeconds(3600) } });
    const { sendCommand: now } = await operator.data(SendCommandDocument, { input: { deviceId, type: "valve.close" } });
    const { sendCommand: past } = await operator.data(SendCommandDocument, { input: { deviceId, type: "valve.close", notBefore: inSeconds(-60) } });
    await waitForStatus(operator, now.id, "SUCCEEDED");
    await waitForStatus(operator, past.id, "SUCCEEDED");
    const { command } = await operator.data(CommandDocument, { id: scheduled.id });
    assert.deepEqual([command?.status, command?.sentAt], ["QUEUED", null]);
    // Until then it is an ordinary QUEUED command: it may be canceled.
    const { cancelCommand } = await operator.data(CancelCommandDocument, { id: scheduled.id });
    assert.equal(cancelCommand.status, "CANCELED");
  });

  it("the expiry counts from notBefore: a scheduled command for an offline device expires expiresInSeconds after it", async () => {
    const deviceId = uniqueName("th-");
    await kit.device(deviceId, "thermostat", { connect: false });
    const notBefore = inSeconds(2);
    const { sendCommand } = await operator.data(SendCommandDocument, {
      input: { deviceId, type: SETPOINT, payload: { celsius: 19 }, notBefore, expiresInSeconds: 1 },
    });
    assert.equal(Date.parse(sendCommand.expiresAt!), Date.parse(notBefore) + 1_000);
    const expired = await waitForStatus(operator, sendCommand.id, "EXPIRED", 30_000);
    assert.ok(Date.parse(expired.history.at(-1)!.at) >= Date.parse(notBefore) + 1_000, `expired at ${expired.history.at(-1)!.at}`);
  });

  it("the same idempotency key with the same notBefore is the same command; with another one a CONFLICT", async () => {
    const deviceId = uniqueName("th-");
    await kit.device(deviceId, "thermostat", { connect: false });
    const input = { deviceId, type: SETPOINT, payload: { celsius: 20 }, notBefore: inSeconds(600), idempotencyKey: uniqueName("k-") };
    const first = (await operator.data(SendCommandDocument, { input })).sendCommand;
    const again = (await operator.data(SendCommandDocument, { input })).sendCommand;
    assert.equal(again.id, first.id);
    const moved = await operator.request(SendCommandDocument, { input: { ...input, notBefore: inSeconds(1200) } });
    assert.equal(moved.errors?.[0]?.extensions?.code, "CONFLICT");
    assert.equal(moved.errors?.[0]?.extensions?.field, "idempotencyKey");
  });
});

describe("scheduled commands across a gateway restart", () => {
  let running: GatewayProcess[] = [];
  after(async () => {
    await Promise.all(running.map((gateway) => gateway.stop()));
    running = [];
  });

  it("a command scheduled ahead is held by the restarted gateway and SENT not before notBefore", { timeout: 120_000 }, async () => {
    const tenant = uniqueName("tenant-");
    const prefix = uniqueName("s");
    const env = {
      MONGODB_URI: await testStoreUri(),
      MONGODB_DB: uniqueName("sched_"),
      MQTT_URL: MOSQUITTO_URL,
      MQTT_TOPIC_PREFIX: prefix,
      JWT_SECRET: TEST_JWT_SECRET,
      DEMO: "0",
    };
    const token = await signToken(TEST_JWT_SECRET, { sub: "operator-user", tenant, roles: ["admin"] });
    const deviceId = uniqueName("th-");
    const device = createSimulatedDevice({ deviceId, model: "thermostat", brokerUrl: MOSQUITTO_URL, topicPrefix: prefix, latencyMs: [0, 0] });
    try {
      const first = await startGatewayProcess(env);
      running.push(first);
      const client = new GraphQLTestClient(first.url, { token });
      await client.data(RegisterDeviceDocument, { input: { id: deviceId, site: "site-a", model: "thermostat" } });
      await device.start();
      // Two of them: the restart takes its time on a loaded machine, and the later one is still ahead when it is done.
      // Of different types: two setpoints both due when the dispatch resumes would rightly be one (superseding).
      const scheduled = [];
      for (const [seconds, type, payload] of [[3, SETPOINT, { celsius: 20 }], [15, "device.reboot", {}]] as const) {
        const notBefore = inSeconds(seconds);
        const { sendCommand } = await client.data(SendCommandDocument, { input: { deviceId, type, payload, notBefore } });
        assert.equal(sendCommand.status, "QUEUED");
        scheduled.push({ id: sendCommand.id, notBefore });
      }
      // A crash rather than a stop: nothing but the store carries the schedule over.
      assert.equal(await first.kill(), "SIGKILL");
      running = running.filter((gateway) => gateway !== first);

      const second = await startGatewayProcess(env);
      running.push(second);
      const again = new GraphQLTestClient(second.url, { token });
      for (const { id, notBefore } of scheduled) {
        const done = await waitForStatus(again, id, "SUCCEEDED", 60_000);
        assert.ok(Date.parse(done.sentAt!) >= Date.parse(notBefore), `sent at ${done.sentAt}, notBefore ${notBefore}`);
        assert.equal(device.executions.get(id), 1);
      }
    } finally {
      await device.stop({ graceful: false }).catch(() => undefined);
    }
  });
});
