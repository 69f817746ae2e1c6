import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { connectAsync, type IClientOptions, type MqttClient } from "mqtt";
import { createTopics } from "../../src/mqtt/topics";
import { startPrivateMosquitto, type PrivateMosquitto } from "../kit/mosquitto";
import { uniqueName } from "../kit/store";

const README = resolve(__dirname, "../../../README.md");

/** The Mosquitto ACL exactly as the README shows it, with its `iot` prefix replaced by this test's. */
function readmeAcl(prefix: string): string {
  const section = readFileSync(README, "utf8").split("### Broker ACL")[1];
  const block = /```\n([\s\S]*?)```/.exec(section ?? "")?.[1];
  assert.ok(block, "README has a Broker ACL code block");
  return block.replace(/\biot\//g, `${prefix}/`);
}

/** A private Mosquitto with the README's ACL and a password file for the gateway user. */
async function startMosquitto(dir: string, prefix: string, gatewayPassword: string): Promise<PrivateMosquitto> {
  const passwordFile = join(dir, "passwd");
  const aclFile = join(dir, "acl");
  execFileSync("mosquitto_passwd", ["-c", "-b", passwordFile, "gateway", gatewayPassword]);
  writeFileSync(aclFile, readmeAcl(prefix));
  return startPrivateMosquitto(dir, { conf: [`password_file ${passwordFile}`, `acl_file ${aclFile}`] });
}

describe("Mosquitto with the README's ACL", () => {
  const dir = mkdtempSync(join(tmpdir(), "mosquitto-acl-"));
  const prefix = uniqueName("acl");
  const topics = createTopics(prefix);
  const gatewayPassword = randomUUID();
  let broker: PrivateMosquitto;
  const clients: MqttClient[] = [];

  before(async () => {
    broker = await startMosquitto(dir, prefix, gatewayPassword);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = async (opts: IClientOptions) => {
    const client = await connectAsync(broker.url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 3000, ...opts });
    clients.push(client);
    const received: Array<{ topic: string; payload: string }> = [];
    client.on("message", (topic, payload) => received.push({ topic, payload: payload.toString() }));
    /** Resolves when `payload` arrives; everything received before it is in `received`. */
    const waitFor = (payload: string) =>
      new Promise<void>((resolveSeen) => {
        if (received.some((m) => m.payload === payload)) return resolveSeen();
        const onMessage = (_topic: string, p: Buffer) => {
          if (p.toString() !== payload) return;
          client.off("message", onMessage);
          resolveSeen();
        };
        client.on("message", onMessage);
      });
    return { client, received, waitFor };
  };
  const gateway = () => connect({ clientId: `gateway-${randomUUID()}`, username: "gateway", password: gatewayPassword });
  const device = (id: string) => connect({ clientId: id });

  it("the gateway user reads every device's replies, presence and telemetry and publishes commands", async () => {
    const gw = await gateway();
    await gw.client.subscribeAsync(`${prefix}/devices/+/+`, { qos: 1 });
    const dev = await device(uniqueName("dev-"));
    const granted = await dev.client.subscribeAsync(topics.commands(dev.client.options.clientId!), { qos: 1 });
    assert.equal(granted[0]!.qos, 1);
    const id = dev.client.options.clientId!;
    for (const topic of [topics.replies(id), topics.presence(id), topics.telemetry(id)]) {
      const payload = `from-device-${randomUUID()}`;
      await dev.client.publishAsync(topic, payload, { qos: 1 });
      await gw.waitFor(payload);
    }
    const command = `command-${randomUUID()}`;
    await gw.client.publishAsync(topics.commands(id), command, { qos: 1 });
    await dev.waitFor(command);
  });

  it("a device cannot publish into another device's topics, its own commands, alerts or the gateway's bus", async () => {
    const gw = await gateway();
    await gw.client.subscribeAsync(`${prefix}/#`, { qos: 1 });
    const attacker = await device(uniqueName("attacker-"));
    const victim = uniqueName("victim-");
    const me = attacker.client.options.clientId!;
    const forged = [topics.replies(victim), topics.presence(victim), topics.telemetry(victim), topics.commands(victim), topics.commands(me), topics.alerts(), topics.bus("COMMAND_UPDATED")];
    for (const topic of forged) await attacker.client.publishAsync(topic, `forged-${topic}`, { qos: 1 });
    // The broker handles one client's publishes in order: once this one arrived, the forged ones would have too.
    const marker = `marker-${randomUUID()}`;
    await attacker.client.publishAsync(topics.telemetry(me), marker, { qos: 1 });
    await gw.waitFor(marker);
    assert.deepEqual(gw.received.filter((m) => m.payload.startsWith("forged-")), []);
  });

  it("a device cannot subscribe to another device's commands, by name or by wildcard", async () => {
    const gw = await gateway();
    const victim = await device(uniqueName("victim-"));
    await victim.client.subscribeAsync(topics.commands(victim.client.options.clientId!), { qos: 1 });
    const attacker = await device(uniqueName("attacker-"));
    const me = attacker.client.options.clientId!;
    const filters = [topics.commands(victim.client.options.clientId!), `${prefix}/devices/+/commands`, `${prefix}/#`, "#"];
    // Mosquitto 2 grants these in the SUBACK and checks read access on each message it would deliver.
    await attacker.client.subscribeAsync(filters, { qos: 1 });
    await attacker.client.subscribeAsync(topics.commands(me), { qos: 1 });

    const secret = `for-victim-${randomUUID()}`;
    await gw.client.publishAsync(topics.commands(victim.client.options.clientId!), secret, { qos: 1 });
    await victim.waitFor(secret);
    // Same publisher, same broker: the attacker would have received the first before its own.
    const marker = `marker-${randomUUID()}`;
    await gw.client.publishAsync(topics.commands(me), marker, { qos: 1 });
    await attacker.waitFor(marker);
    assert.deepEqual(attacker.received.map((m) => m.payload), [marker]);
  });

  it("a client id with a wildcard does not widen a pattern: it reads no other device's commands and forges no replies", async (t) => {
    const gw = await gateway();
    await gw.client.subscribeAsync(`${prefix}/devices/+/replies`, { qos: 1 });
    const victim = await device(uniqueName("victim-"));
    const victimId = victim.client.options.clientId!;
    await victim.client.subscribeAsync(topics.commands(victimId), { qos: 1 });
    let wildcard;
    try {
      wildcard = await device("+");
    } catch (error) {
      // Refusing the connection is just as good, but then this case has nothing to show.
      t.skip(`the broker refused the client id "+": ${(error as Error).message}`);
      return;
    }
    await wildcard.client.subscribeAsync(`${prefix}/devices/+/commands`, { qos: 1 });
    const secret = `for-victim-${randomUUID()}`;
    await gw.client.publishAsync(topics.commands(victimId), secret, { qos: 1 });
    await victim.waitFor(secret);
    await wildcard.client.publishAsync(topics.replies(victimId), "forged", { qos: 1 });
    // Positive control: the gateway's subscription gets a device's own reply.
    const genuine = `genuine-${randomUUID()}`;
    await victim.client.publishAsync(topics.replies(victimId), genuine, { qos: 1 });
    await gw.waitFor(genuine);
    // Barriers: the broker answers a client's SUBSCRIBE after every message it had queued for that client.
    // The secret was queued for every reader before the victim got it; the forged reply, if accepted, for
    // the gateway before the wildcard client got its PUBACK.
    await Promise.all([wildcard.client.subscribeAsync(`${prefix}/barrier`, { qos: 1 }), gw.client.subscribeAsync(`${prefix}/barrier`, { qos: 1 })]);
    assert.deepEqual(wildcard.received, []);
    assert.deepEqual(gw.received.filter((m) => m.payload === "forged"), []);
  });

  it("the gateway user name with a wrong or no password is refused", async () => {
    await assert.rejects(connect({ clientId: `gw-${randomUUID()}`, username: "gateway", password: "wrong" }));
    await assert.rejects(connect({ clientId: `gw-${randomUUID()}`, username: "gateway" }));
  });
});
