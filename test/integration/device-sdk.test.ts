import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";
import { createSimulatedDevice, DeviceClient, type CommandHandler, type DeviceClientOptions } from "../../src/device-sdk";
import { createTopics } from "../../src/mqtt/topics";
import { MOSQUITTO_URL } from "../kit/store";

const WAIT_MS = 5_000;
const runId = randomUUID().slice(0, 8);

interface Observed {
  topic: string;
  deviceId: string;
  kind: string;
  body: Record<string, unknown>;
}

/** Plays the gateway: publishes commands and records every reply, presence and telemetry message under its prefix. */
class GatewayProbe {
  readonly topics;
  private readonly seen: Observed[] = [];
  private waiters: { match: (m: Observed) => boolean; nth: number; resolve: (m: Observed) => void }[] = [];

  private constructor(
    readonly client: MqttClient,
    prefix: string,
  ) {
    this.topics = createTopics(prefix);
    client.on("message", (topic, payload) => {
      const parsed = this.topics.parseDeviceTopic(topic);
      if (!parsed || payload.length === 0) return;
      this.seen.push({ topic, deviceId: parsed.deviceId, kind: parsed.kind, body: JSON.parse(payload.toString()) as Record<string, unknown> });
      this.waiters = this.waiters.filter((w) => !this.settle(w));
    });
  }

  static async connect(url: string, prefix: string): Promise<GatewayProbe> {
    const client = await mqtt.connectAsync(url, { clientId: `probe-${randomUUID()}`, protocolVersion: 4, reconnectPeriod: 0 });
    const probe = new GatewayProbe(client, prefix);
    await client.subscribeAsync([probe.topics.allDevices("replies"), probe.topics.allDevices("presence"), probe.topics.allDevices("telemetry")], { qos: 1 });
    return probe;
  }

  async send(deviceId: string, command: Record<string, unknown> | string): Promise<void> {
    await this.client.publishAsync(this.topics.commands(deviceId), typeof command === "string" ? command : JSON.stringify(command), { qos: 1 });
  }

  all(match: (m: Observed) => boolean): Observed[] {
    return this.seen.filter(match);
  }

  /** Resolves with the nth (1-based) message matching, already seen or still to come. */
  nth(match: (m: Observed) => boolean, nth = 1): Promise<Observed> {
    return new Promise((resolve, reject) => {
      const waiter = { match, nth, resolve };
      if (this.settle(waiter)) return;
      this.waiters.push(waiter);
      setTimeout(() => reject(new Error(`timed out waiting for message #${nth} matching ${match.toString()}`)), WAIT_MS).unref();
    });
  }

  private settle(waiter: { match: (m: Observed) => boolean; nth: number; resolve: (m: Observed) => void }): boolean {
    const found = this.seen.filter(waiter.match);
    if (found.length < waiter.nth) return false;
    waiter.resolve(found[waiter.nth - 1]!);
    return true;
  }
}

const reply = (deviceId: string, id: string, status: string, attempt?: number) => (m: Observed) =>
  m.kind === "replies" && m.deviceId === deviceId && m.body.id === id && m.body.status === status && (attempt === undefined || m.body.attempt === attempt);
const presence = (deviceId: string, online: boolean) => (m: Observed) => m.kind === "presence" && m.deviceId === deviceId && m.body.online === online;

function command(id: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, type: "thermostat.setTemperature", payload: { celsius: 21 }, attempt: 1, issuedAt: new Date().toISOString(), expiresAt: null, ...overrides };
}

/** The retained message a newly connecting subscriber gets on a topic. */
async function retained(url: string, topic: string): Promise<{ body: unknown; retain: boolean }> {
  const client = await mqtt.connectAsync(url, { clientId: `retained-${randomUUID()}`, protocolVersion: 4, reconnectPeriod: 0 });
  try {
    const message = new Promise<{ body: unknown; retain: boolean }>((resolve, reject) => {
      client.once("message", (_topic, payload, packet) => resolve({ body: JSON.parse(payload.toString()), retain: packet.retain }));
      setTimeout(() => reject(new Error(`no retained message on ${topic}`)), WAIT_MS).unref();
    });
    await client.subscribeAsync(topic, { qos: 1 });
    return await message;
  } finally {
    await client.endAsync();
  }
}

describe("device SDK against Mosquitto", () => {
  const prefix = `test-${runId}/sdk`;
  const devices: DeviceClient[] = [];
  let probe: GatewayProbe;
  let deviceCount = 0;

  const newDevice = (handler: CommandHandler, options: Partial<DeviceClientOptions> = {}) => {
    const device = new DeviceClient({ deviceId: `dev-${runId}-${++deviceCount}`, brokerUrl: MOSQUITTO_URL, topicPrefix: prefix, handler, ...options });
    devices.push(device);
    return device;
  };
  const started = async (handler: CommandHandler, options: Partial<DeviceClientOptions> = {}) => {
    const device = newDevice(handler, options);
    await device.start();
    return device;
  };
  const succeed: CommandHandler = (c) => ({ result: { ...c.payload, ran: c.attempt } });

  before(async () => {
    probe = await GatewayProbe.connect(MOSQUITTO_URL, prefix);
  });

  after(async () => {
    await Promise.all(devices.map((d) => d.stop()));
    // Leave nothing behind on the shared broker: persistent sessions and retained presence.
    for (const d of devices) {
      const session = await mqtt.connectAsync(MOSQUITTO_URL, { clientId: d.deviceId, clean: true, protocolVersion: 4, reconnectPeriod: 0 });
      await session.endAsync();
      await probe.client.publishAsync(probe.topics.presence(d.deviceId), "", { qos: 1, retain: true });
    }
    await probe.client.endAsync();
  });

  it("answers a command sent as soon as presence is seen: DELIVERED, then SUCCEEDED with the handler's result", async () => {
    const seen: unknown[] = [];
    const device = newDevice((c) => {
      seen.push(c);
      return { result: { setpoint: c.payload.celsius } };
    });
    const starting = device.start();
    // The gateway sends as soon as it sees presence: the subscription must already be there.
    await probe.nth(presence(device.deviceId, true));
    const cmd = command("c1", { payload: { celsius: 22.5 }, attempt: 3, expiresAt: new Date(Date.now() + 60_000).toISOString() });
    await probe.send(device.deviceId, cmd);
    const succeeded = await probe.nth(reply(device.deviceId, "c1", "SUCCEEDED"));
    await starting;

    assert.deepEqual(succeeded.body, { id: "c1", status: "SUCCEEDED", result: { setpoint: 22.5 }, attempt: 3 });
    const replies = probe.all((m) => m.kind === "replies" && m.deviceId === device.deviceId).map((m) => m.body);
    assert.deepEqual(replies, [{ id: "c1", status: "DELIVERED", attempt: 3 }, succeeded.body]);
    assert.deepEqual(seen, [cmd]);
    assert.equal(device.received, 1);
    assert.equal(device.executions.get("c1"), 1);
  });

  it("answers FAILED with the handler's error, and DEVICE_ERROR when the handler throws", async () => {
    const device = await started((c) => {
      if (c.id === "refused") return { error: { code: "OUT_OF_RANGE", message: "too hot" } };
      throw new Error("sensor unplugged");
    });
    await probe.send(device.deviceId, command("refused"));
    await probe.send(device.deviceId, command("throws"));
    const refused = await probe.nth(reply(device.deviceId, "refused", "FAILED"));
    const thrown = await probe.nth(reply(device.deviceId, "throws", "FAILED"));
    assert.deepEqual(refused.body.error, { code: "OUT_OF_RANGE", message: "too hot" });
    assert.deepEqual(thrown.body.error, { code: "DEVICE_ERROR", message: "sensor unplugged" });
  });

  it("runs a duplicate delivery (same id and attempt) once and re-sends the same SUCCEEDED reply", async () => {
    let runs = 0;
    const device = await started(() => ({ result: { run: ++runs } }));
    await probe.send(device.deviceId, command("dup"));
    const first = await probe.nth(reply(device.deviceId, "dup", "SUCCEEDED"));
    await probe.send(device.deviceId, command("dup"));
    const second = await probe.nth(reply(device.deviceId, "dup", "SUCCEEDED"), 2);

    assert.equal(runs, 1);
    assert.equal(device.executions.get("dup"), 1);
    assert.deepEqual(second.body, first.body);
    assert.deepEqual(first.body.result, { run: 1 });
    assert.equal(probe.all(reply(device.deviceId, "dup", "DELIVERED")).length, 2);
  });

  it("does not run a command again while it is running; a higher attempt waits and retries a failure", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const device = await started(async (c) => {
      if (c.attempt === 1) {
        await gate;
        return { error: { code: "JAMMED" } };
      }
      return { result: { ran: c.attempt } };
    });
    const id = "slow";
    await probe.send(device.deviceId, command(id));
    await probe.nth(reply(device.deviceId, id, "DELIVERED", 1));
    await probe.send(device.deviceId, command(id));
    await probe.nth(reply(device.deviceId, id, "DELIVERED", 1), 2);
    await probe.send(device.deviceId, command(id, { attempt: 2 }));
    await probe.nth(reply(device.deviceId, id, "DELIVERED", 2));
    assert.equal(device.executions.get(id), 1, "a duplicate must not start a second run");

    release();
    const failed = await probe.nth(reply(device.deviceId, id, "FAILED", 1));
    const succeeded = await probe.nth(reply(device.deviceId, id, "SUCCEEDED", 2));
    assert.deepEqual(failed.body.error, { code: "JAMMED" });
    assert.deepEqual(succeeded.body.result, { ran: 2 });
    assert.equal(device.executions.get(id), 2);
    // The same-attempt duplicate got DELIVERED only: the running execution answered it.
    assert.equal(probe.all((m) => reply(device.deviceId, id, "FAILED")(m) || reply(device.deviceId, id, "SUCCEEDED")(m)).length, 2);
  });

  it("runs a FAILED command again on a higher attempt, but not on the same or a lower one", async () => {
    const device = await started((c) => (c.attempt < 3 ? { error: { code: "BUSY", message: `attempt ${c.attempt}` } } : { result: { ran: c.attempt } }));
    const id = "retry";
    await probe.send(device.deviceId, command(id, { attempt: 2 }));
    const failed = await probe.nth(reply(device.deviceId, id, "FAILED", 2));
    await probe.send(device.deviceId, command(id, { attempt: 2 }));
    const sameAttempt = await probe.nth(reply(device.deviceId, id, "FAILED", 2), 2);
    await probe.send(device.deviceId, command(id, { attempt: 1 }));
    const lowerAttempt = await probe.nth(reply(device.deviceId, id, "FAILED", 1));
    assert.equal(device.executions.get(id), 1);
    assert.deepEqual(sameAttempt.body.error, failed.body.error);
    assert.deepEqual(lowerAttempt.body.error, { code: "BUSY", message: "attempt 2" });

    await probe.send(device.deviceId, command(id, { attempt: 3 }));
    const succeeded = await probe.nth(reply(device.deviceId, id, "SUCCEEDED", 3));
    assert.deepEqual(succeeded.body.result, { ran: 3 });
    assert.equal(device.executions.get(id), 2);
  });

  it("does not run a SUCCEEDED command again on a higher attempt and re-sends its result", async () => {
    const device = await started(succeed);
    const id = "done";
    await probe.send(device.deviceId, command(id, { payload: { celsius: 19 } }));
    const first = await probe.nth(reply(device.deviceId, id, "SUCCEEDED", 1));
    await probe.send(device.deviceId, command(id, { payload: { celsius: 19 }, attempt: 2 }));
    const again = await probe.nth(reply(device.deviceId, id, "SUCCEEDED", 2));
    assert.equal(device.executions.get(id), 1);
    assert.deepEqual(again.body.result, first.body.result);
    assert.deepEqual(first.body.result, { celsius: 19, ran: 1 });
  });

  it("answers a command whose expiresAt is past by the device clock FAILED EXPIRED without running it", async () => {
    const hourAhead = { now: () => new Date(Date.now() + 3_600_000) };
    const device = await started(succeed, { clock: hourAhead });
    const inMinutes = (minutes: number) => new Date(Date.now() + minutes * 60_000).toISOString();
    await probe.send(device.deviceId, command("late", { expiresAt: inMinutes(1) }));
    await probe.send(device.deviceId, command("in-time", { expiresAt: inMinutes(61) }));
    const failed = await probe.nth(reply(device.deviceId, "late", "FAILED"));
    await probe.nth(reply(device.deviceId, "in-time", "SUCCEEDED"));
    assert.equal((failed.body.error as { code: string }).code, "EXPIRED");
    assert.equal(device.executions.has("late"), false);
    assert.equal(device.executed, 1);
  });

  it("ignores malformed commands", async () => {
    const device = await started(succeed);
    await probe.send(device.deviceId, "{not json");
    await probe.send(device.deviceId, JSON.stringify(["array"]));
    await probe.send(device.deviceId, command("bad-attempt", { attempt: 0 }));
    await probe.send(device.deviceId, command("bad-expiry", { expiresAt: "someday" }));
    await probe.send(device.deviceId, command("good"));
    await probe.nth(reply(device.deviceId, "good", "SUCCEEDED"));
    assert.equal(device.received, 1);
    assert.deepEqual(
      probe.all((m) => m.kind === "replies" && m.deviceId === device.deviceId).map((m) => m.body.id),
      ["good", "good"],
    );
  });

  it("a crash fires the will: retained presence becomes offline; a restart announces online again", async () => {
    const device = await started(succeed);
    await probe.nth(presence(device.deviceId, true));
    await device.stop({ graceful: false });
    await probe.nth(presence(device.deviceId, false));
    assert.deepEqual(await retained(MOSQUITTO_URL, probe.topics.presence(device.deviceId)), { body: { online: false }, retain: true });

    await device.start();
    await probe.nth(presence(device.deviceId, true), 2);
    assert.equal(device.online, true);
    assert.deepEqual(await retained(MOSQUITTO_URL, probe.topics.presence(device.deviceId)), { body: { online: true }, retain: true });
  });

  it("a graceful stop publishes retained presence offline", async () => {
    const device = await started(succeed);
    await device.stop();
    await probe.nth(presence(device.deviceId, false));
    assert.equal(device.online, false);
    assert.deepEqual(await retained(MOSQUITTO_URL, probe.topics.presence(device.deviceId)), { body: { online: false }, retain: true });
  });

  it("gets QoS 1 commands sent while it was briefly offline, and does not execute a redelivered one twice", async () => {
    const device = await started(succeed);
    await probe.send(device.deviceId, command("before"));
    await probe.nth(reply(device.deviceId, "before", "SUCCEEDED"));

    await device.stop({ graceful: false });
    await probe.nth(presence(device.deviceId, false));
    await probe.send(device.deviceId, command("while-offline"));
    // The gateway resends what it did not see answered; the device must recognise it.
    await probe.send(device.deviceId, command("before"));
    await device.start();

    await probe.nth(reply(device.deviceId, "while-offline", "SUCCEEDED"));
    await probe.nth(reply(device.deviceId, "before", "SUCCEEDED"), 2);
    assert.equal(device.executions.get("while-offline"), 1);
    assert.equal(device.executions.get("before"), 1);
  });

  it("publishes telemetry", async () => {
    const device = await started(succeed);
    await device.publishTelemetry({ temperature: 31.5 });
    const telemetry = await probe.nth((m) => m.kind === "telemetry" && m.deviceId === device.deviceId);
    assert.deepEqual(telemetry.body, { temperature: 31.5 });
  });

  it("a simulated device with a drop rate swallows a command entirely", async () => {
    // Draws in order: drop? (first command: yes), drop? (second: no).
    const draws = [0.1, 0.9];
    const device = createSimulatedDevice({
      deviceId: `dev-${runId}-${++deviceCount}`,
      brokerUrl: MOSQUITTO_URL,
      topicPrefix: prefix,
      model: "thermostat",
      dropRate: 0.5,
      random: () => draws.shift() ?? assert.fail("unexpected random draw"),
    });
    devices.push(device);
    await device.start();
    await probe.send(device.deviceId, command("lost", { payload: { celsius: 20 } }));
    await probe.send(device.deviceId, command("kept", { payload: { celsius: 23 } }));
    const kept = await probe.nth(reply(device.deviceId, "kept", "SUCCEEDED"));
    assert.deepEqual(kept.body.result, { celsius: 23, setpoint: 23 });
    // Replies are in order on one topic: anything for "lost" would have arrived before this one.
    assert.equal(probe.all((m) => m.kind === "replies" && m.body.id === "lost").length, 0);
    assert.equal(device.received, 2);
    assert.equal(device.executions.has("lost"), false);
  });
});

describe("device SDK against aedes (the embedded broker)", () => {
  let broker: Aedes;
  let server: ReturnType<typeof createServer>;
  let url: string;

  before(async () => {
    broker = await Aedes.createBroker();
    server = createServer(broker.handle);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("subscribes before announcing presence on every connect; a crash fires the will", async () => {
    const probe = await GatewayProbe.connect(url, "iot");
    const device = new DeviceClient({ deviceId: "aedes-dev", brokerUrl: url, handler: () => ({}) });
    // What the broker saw from the device, in order: the gateway sends commands as soon as it sees presence.
    const brokerLog: string[] = [];
    let onLogged = () => {};
    const logged = (entries: number) =>
      new Promise<void>((resolve) => {
        onLogged = () => brokerLog.length >= entries && resolve();
        onLogged();
      });
    broker.on("subscribe", (subscriptions, client) => {
      if (client.id !== device.deviceId) return;
      brokerLog.push(...subscriptions.map((s) => `subscribe ${s.topic}`));
      onLogged();
    });
    // aedes reports the will as published by the client it belonged to; a crash publishes nothing itself.
    broker.on("publish", (packet) => {
      if (packet.topic !== probe.topics.presence(device.deviceId)) return;
      brokerLog.push(`presence ${packet.payload.toString()}`);
      onLogged();
    });
    try {
      await device.start();
      await probe.nth(presence(device.deviceId, true));
      await device.stop({ graceful: false });
      await probe.nth(presence(device.deviceId, false));
      assert.deepEqual(await retained(url, probe.topics.presence(device.deviceId)), { body: { online: false }, retain: true });
      await device.start();
      await probe.nth(presence(device.deviceId, true), 2);
      // aedes emits "publish" after it has forwarded the message, so the probe may see it first.
      await logged(5);
      const subscribe = `subscribe ${probe.topics.commands(device.deviceId)}`;
      assert.deepEqual(brokerLog, [subscribe, 'presence {"online":true}', 'presence {"online":false}', subscribe, 'presence {"online":true}']);
    } finally {
      await device.stop();
      await probe.client.endAsync();
    }
  });
});
