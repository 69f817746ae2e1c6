import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { connectAsync } from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import type { DeviceRegistry } from "../../src/embedded/broker";
import { startEmbeddedBroker } from "../../src/embedded/broker";
import type { EmbeddedBroker, MqttRefusal } from "../../src/embedded/broker";
import { findFreePort } from "../../src/embedded/free-port";
import { createLogger } from "../../src/logger";
import { createTopics } from "../../src/mqtt/topics";
import { fixedHeader } from "../kit/mqtt-wire";
import { waitUntil } from "../kit/wait";

const log = createLogger(process.env.LOG_LEVEL ?? "silent");
const topics = createTopics("iot");
const gatewayCredentials = { username: "gateway", password: "s3cret-gateway-password" };
const MAX_MESSAGE_BYTES = 1024;
/** The devices these tests connect as; anything else is an unregistered client. */
/** A registry the test can add to, as registerDevice adds to the gateway's device directory. */
const registryOf = (ids: string[]): DeviceRegistry & { add(id: string): void } => {
  const known = new Set(ids);
  return { isRegisteredDevice: (id) => known.has(id), add: (id) => void known.add(id) };
};
const registered = () => registryOf(["d1", "d1-telemetry", "d1-sub", "d1-will", "good-id_1.x:y", "gateway-1", "d1-retain", "d1-big"]);

describe("embedded MQTT broker", () => {
  let broker: EmbeddedBroker;
  const clients: MqttClient[] = [];
  const devices = registered();
  const refusals: MqttRefusal[] = [];

  before(async () => {
    broker = await startEmbeddedBroker({
      port: 0,
      host: "127.0.0.1",
      topics,
      gatewayCredentials,
      devices,
      maxMessageBytes: MAX_MESSAGE_BYTES,
      onRefused: (refusal) => refusals.push(refusal),
      log,
    });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await broker.close();
  });

  const connect = async (opts: IClientOptions): Promise<MqttClient> => {
    const client = await connectAsync(broker.url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 3000, ...opts });
    clients.push(client);
    return client;
  };
  const gateway = (clientId = `gw-${randomUUID()}`) => connect({ clientId, ...gatewayCredentials });
  const device = (clientId: string, opts: IClientOptions = {}) => connect({ clientId, ...opts });
  const refusalCode = async (opts: IClientOptions): Promise<unknown> => {
    try {
      const client = await connect(opts);
      await client.endAsync(true);
      return "connected";
    } catch (err) {
      return (err as { code?: unknown }).code;
    }
  };

  /** Collects what a client receives, to wait for one payload or check that another never came. */
  const recorder = (client: MqttClient) => {
    const seen: Array<{ topic: string; payload: string }> = [];
    client.on("message", (topic, payload) => seen.push({ topic, payload: payload.toString() }));
    return {
      seen,
      has: (payload: string) => seen.some((m) => m.payload === payload),
      waitFor: async (payload: string, timeoutMs = 15_000) => {
        const deadline = Date.now() + timeoutMs;
        while (!seen.some((m) => m.payload === payload)) {
          if (Date.now() > deadline) throw new Error(`${payload} not received within ${timeoutMs} ms; got ${JSON.stringify(seen)}`);
          await sleep(10);
        }
        return seen.find((m) => m.payload === payload)!;
      },
    };
  };

  /**
   * A forbidden publish is not delivered. MQTT 3.1.1 cannot refuse a single publish, so aedes either drops the
   * connection (it decides before routing anything) or lets it stay. If the publisher is still connected, the
   * control message comes from the publisher itself (`ownTopic`): the broker handles one client's publishes in
   * order, so once the control has arrived the forbidden one would have. If it was dropped, the control can only
   * come from another connection, whose order against the dropped one no broker promises: there the 300 ms
   * after the control are a margin, not a proof.
   */
  const assertNotDelivered = async (
    publisher: MqttClient,
    topic: string,
    payload: string | Buffer,
    { retain = false, ownTopic = topics.telemetry("d1") }: { retain?: boolean; ownTopic?: string } = {},
  ) => {
    const observer = await gateway();
    await observer.subscribeAsync("iot/#", { qos: 1 });
    const observed = recorder(observer);
    const marker = typeof payload === "string" ? payload : payload.subarray(0, 36).toString();
    publisher.publish(topic, payload, { qos: 1, retain }, () => undefined);
    const dropped = await Promise.race([new Promise<boolean>((resolve) => publisher.once("close", () => resolve(true))), sleep(1000).then(() => false)]);
    const control = `control-${randomUUID()}`;
    if (dropped || !publisher.connected) {
      const controller = await gateway();
      await controller.publishAsync(topics.telemetry("control-device"), control, { qos: 1 });
      await observed.waitFor(control);
      await sleep(300);
    } else {
      await publisher.publishAsync(ownTopic, control, { qos: 1 });
      await observed.waitFor(control);
    }
    assert.equal(
      observed.seen.some((m) => m.payload.startsWith(marker)),
      false,
      `forbidden publish to ${topic} was delivered`,
    );
  };

  it("delivers the gateway's commands to the device, and the device's replies to the gateway", async () => {
    const d1 = await device("d1");
    const granted = await d1.subscribeAsync(topics.commands("d1"), { qos: 1 });
    assert.equal(granted[0]?.qos, 1);
    const onDevice = recorder(d1);
    const gw = await gateway();
    await gw.subscribeAsync(topics.allDevices("replies"), { qos: 1 });
    const onGateway = recorder(gw);

    const command = JSON.stringify({ id: randomUUID(), type: "device.reboot", payload: {} });
    await gw.publishAsync(topics.commands("d1"), command, { qos: 1 });
    assert.equal((await onDevice.waitFor(command)).topic, "iot/devices/d1/commands");

    const reply = JSON.stringify({ id: randomUUID(), status: "DELIVERED" });
    await d1.publishAsync(topics.replies("d1"), reply, { qos: 1 });
    assert.equal((await onGateway.waitFor(reply)).topic, "iot/devices/d1/replies");
  });

  it("lets a device publish its own presence and telemetry", async () => {
    const d1 = await device("d1-telemetry");
    const gw = await gateway();
    await gw.subscribeAsync("iot/devices/d1-telemetry/#", { qos: 1 });
    const onGateway = recorder(gw);
    const presence = JSON.stringify({ online: true, n: randomUUID() });
    const telemetry = JSON.stringify({ temperature: 21, n: randomUUID() });
    await d1.publishAsync(topics.presence("d1-telemetry"), presence, { qos: 1, retain: true });
    await d1.publishAsync(topics.telemetry("d1-telemetry"), telemetry, { qos: 1 });
    await onGateway.waitFor(presence);
    await onGateway.waitFor(telemetry);
  });

  it("does not let a device publish to another device's replies", async () => {
    await assertNotDelivered(await device("d1"), topics.replies("d2"), `forged-${randomUUID()}`);
  });

  it("does not let a device publish to its own commands topic", async () => {
    await assertNotDelivered(await device("d1"), topics.commands("d1"), `self-command-${randomUUID()}`);
  });

  it("does not let a device publish alerts or gateway bus messages", async () => {
    await assertNotDelivered(await device("d1"), topics.alerts(), `alert-${randomUUID()}`);
    await assertNotDelivered(await device("d1"), topics.bus("commands"), `bus-${randomUUID()}`);
  });

  it("refuses payloads larger than maxMessageBytes, even on an allowed topic", async () => {
    const big = Buffer.alloc(MAX_MESSAGE_BYTES + 1, "x");
    Buffer.from(`big-${randomUUID()}`).copy(big);
    await assertNotDelivered(await device("d1"), topics.telemetry("d1"), big);
  });

  it("does not let a device subscribe to another device's commands or to wildcards", async () => {
    const d1 = await device("d1-sub");
    assert.deepEqual(await grantedQos(d1, [topics.commands("d2"), "iot/#", "$share/g/iot/devices/d2/commands", topics.commands("d1-sub")]), [128, 128, 128, 1]);
    const onDevice = recorder(d1);
    const gw = await gateway();
    const forOther = `for-d2-${randomUUID()}`;
    const forSelf = `for-d1-${randomUUID()}`;
    await gw.publishAsync(topics.commands("d2"), forOther, { qos: 1 });
    await gw.publishAsync(topics.commands("d1-sub"), forSelf, { qos: 1 });
    // Same publisher, same subscriber: had the first been delivered, it would have arrived before this one.
    await onDevice.waitFor(forSelf);
    assert.equal(onDevice.has(forOther), false, "device received another device's command");
  });

  it("refuses the gateway username with a wrong or missing password", async () => {
    assert.equal(await refusalCode({ clientId: "gw-wrong", username: gatewayCredentials.username, password: "wrong" }), 4);
    assert.equal(await refusalCode({ clientId: "gw-nopass", username: gatewayCredentials.username }), 4);
    assert.equal(await refusalCode({ clientId: "gw-right", ...gatewayCredentials }), "connected");
  });

  it("refuses clients whose id is not a device id", async () => {
    assert.equal(await refusalCode({ clientId: "bad/id" }), 2);
    assert.equal(await refusalCode({ clientId: "bad+id" }), 2);
    assert.equal(await refusalCode({ clientId: "", clean: true }), 2);
    assert.equal(await refusalCode({ clientId: "good-id_1.x:y" }), "connected");
  });

  it("does not let a device take over a connected gateway's client id", async () => {
    const gw = await gateway("gateway-1");
    assert.equal(await refusalCode({ clientId: "gateway-1" }), 2);
    assert.equal(gw.connected, true);
  });

  it("refuses a will on a topic the device may not publish, and delivers an allowed one", async () => {
    const forgedWill = { topic: topics.presence("d2"), payload: Buffer.from('{"online":false}'), qos: 1 as const, retain: false };
    assert.equal(await refusalCode({ clientId: "d1-will", will: forgedWill }), 5);

    const gw = await gateway();
    await gw.subscribeAsync(topics.presence("d1-will"), { qos: 1 });
    const onGateway = recorder(gw);
    const lastWords = JSON.stringify({ online: false, n: randomUUID() });
    const d1 = await device("d1-will", { will: { topic: topics.presence("d1-will"), payload: Buffer.from(lastWords), qos: 1, retain: false } });
    d1.stream.destroy(); // an unclean disconnect fires the will
    await onGateway.waitFor(lastWords);
  });

  it("refuses an unregistered client id at CONNECT (5), lets it in once registered, and counts the refusal", async () => {
    const stranger = `stranger-${randomUUID()}`;
    const before = refusals.filter((r) => r.reason === "unregistered_device").length;
    assert.equal(await refusalCode({ clientId: stranger }), 5);
    assert.equal(refusals.filter((r) => r.reason === "unregistered_device").length, before + 1);
    devices.add(stranger);
    assert.equal(await refusalCode({ clientId: stranger }), "connected");
  });

  it("closes a connection whose CONNECT announces more than it accepts, from the fixed header alone", async () => {
    // 0x10 CONNECT, remaining length 200 MB (varint), and not one byte of the body.
    const announced = 200 * 1024 * 1024;
    const closed = await rawConnectionClosed(broker.port, fixedHeader(0x10, announced));
    assert.equal(closed, true, "the broker waited for the announced body instead of closing");
    assert.ok(refusals.some((r) => r.action === "packet" && r.reason === "oversized"));
  });

  it("closes a connected device that announces a PUBLISH larger than it accepts", async () => {
    const d1 = await device("d1-big");
    const closed = new Promise<void>((resolve) => d1.stream.once("close", () => resolve()));
    d1.stream.write(fixedHeader(0x30, MAX_MESSAGE_BYTES + 70 * 1024));
    await closed;
  });

  it("refuses retained messages except a small presence of the device's own", async () => {
    await assertNotDelivered(await device("d1-retain"), topics.telemetry("d1-retain"), `retained-telemetry-${randomUUID()}`, { retain: true, ownTopic: topics.telemetry("d1-retain") });
    const bulky = JSON.stringify({ online: true, pad: "x".repeat(2000), n: `bulky-${randomUUID()}` });
    await assertNotDelivered(await device("d1-retain"), topics.presence("d1-retain"), bulky, { retain: true, ownTopic: topics.telemetry("d1-retain") });
    assert.ok(refusals.some((r) => r.action === "publish" && r.reason === "retain_not_allowed"));
  });

  it("takes the next port when the requested one is in use", async () => {
    const { port, blocker } = await occupyPortWithFreeNeighbour();
    try {
      const other = await startEmbeddedBroker({ port, host: "127.0.0.1", topics, gatewayCredentials, devices: registered(), log });
      try {
        assert.equal(other.port, port + 1);
        assert.equal(other.url, `mqtt://127.0.0.1:${port + 1}`);
        const gw = await connectAsync(other.url, { protocolVersion: 4, reconnectPeriod: 0, clientId: "gw-port", ...gatewayCredentials });
        await gw.endAsync();
      } finally {
        await other.close();
      }
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describe("embedded MQTT broker: messages per device", () => {
  it("disconnects a device past its rate (the burst is ten seconds' worth) and counts it; other devices are unaffected", async () => {
    const refusals: MqttRefusal[] = [];
    const broker = await startEmbeddedBroker({
      port: 0,
      host: "127.0.0.1",
      topics,
      gatewayCredentials,
      devices: registryOf(["flooder", "quiet"]),
      maxMessagesPerSecond: 2,
      onRefused: (refusal) => refusals.push(refusal),
      log,
    });
    const options = { protocolVersion: 4 as const, reconnectPeriod: 0 };
    const flooder = await connectAsync(broker.url, { ...options, clientId: "flooder" });
    const quiet = await connectAsync(broker.url, { ...options, clientId: "quiet" });
    try {
      const closed = new Promise<void>((resolve) => flooder.stream.once("close", () => resolve()));
      for (let i = 0; i < 100 && !flooder.stream.destroyed; i++) flooder.publish(topics.telemetry("flooder"), `{"n":${i}}`, { qos: 0 });
      await closed;
      assert.ok(refusals.some((r) => r.action === "publish" && r.reason === "rate_limited"));
      await quiet.publishAsync(topics.telemetry("quiet"), "{}", { qos: 1 });
      assert.equal(quiet.connected, true);
    } finally {
      await Promise.all([flooder.endAsync(true), quiet.endAsync(true)]);
      await broker.close();
    }
  });
});

/** Writes `bytes` on a raw TCP connection; true once the broker closes it (false if it is still open after 10 s). */
function rawConnectionClosed(port: number, bytes: Buffer): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(bytes));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 10_000);
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.on("timeout", reject);
  });
}

/** The SUBACK's return codes; mqtt.js rejects a SUBACK that holds a failure (128), so read them from the error too. */
async function grantedQos(client: MqttClient, filters: string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos: 1 })).map((g) => g.qos);
  } catch (err) {
    const granted = (err as { packet?: { granted?: unknown } }).packet?.granted;
    if (!Array.isArray(granted)) throw err;
    return granted.map((g: unknown) => (typeof g === "number" ? g : Number((g as { qos?: unknown }).qos)));
  }
}

/** Occupies a free port whose successor is free too, so the expected fallback is known. */
async function occupyPortWithFreeNeighbour(): Promise<{ port: number; blocker: net.Server }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await findFreePort();
    if (port >= 65535) continue;
    const blocker = net.createServer();
    const neighbour = net.createServer();
    try {
      await listen(blocker, port);
      await listen(neighbour, port + 1);
      await new Promise((resolve) => neighbour.close(resolve));
      return { port, blocker };
    } catch {
      blocker.close();
      neighbour.close();
    }
  }
  throw new Error("no free pair of ports found");
}

function listen(server: net.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => resolve());
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe("embedded MQTT broker: a burst behind a stalled subscriber", () => {
  it("survives thousands of messages held up by a subscriber that stops reading and then goes away", async () => {
    const broker = await startEmbeddedBroker({ port: 0, host: "127.0.0.1", topics, gatewayCredentials, devices: registryOf([]), log });
    const options = { protocolVersion: 4 as const, reconnectPeriod: 0, ...gatewayCredentials };
    const connect = (clientId: string) => connectAsync(broker.url, { ...options, clientId });
    const clients: MqttClient[] = [];
    try {
      const stalled = await connect("stalled");
      clients.push(stalled);
      await stalled.subscribeAsync("iot/burst/#", { qos: 0 });
      stalled.stream.pause();
      const publishers = await Promise.all(Array.from({ length: 10 }, (_, i) => connect(`publisher-${i}`)));
      clients.push(...publishers);
      // As 30,000 devices' wills after a network cut: more than the broker can pass on to the stalled reader.
      const payload = Buffer.alloc(200, 1);
      const published = publishers.flatMap((p, n) => Array.from({ length: 3000 }, (_, i) => p.publishAsync(`iot/burst/${n}/${i}`, payload, { qos: 0 })));
      // The broker holds messages once it stops reading the publishers: their sockets back up.
      await waitUntil("every publisher backed up behind the stalled subscriber", () => publishers.every((p) => p.stream.writableNeedDrain), 60_000);
      stalled.stream.destroy();
      await Promise.all(published);
      const probe = await connect("probe");
      clients.push(probe);
      await probe.subscribeAsync("iot/probe", { qos: 1 });
      const received = new Promise<string>((resolve) => probe.once("message", (_topic, message) => resolve(message.toString())));
      await probe.publishAsync("iot/probe", "still here", { qos: 1 });
      assert.equal(await received, "still here");
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      await broker.close();
    }
  });
});

