import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import mqtt from "mqtt";
import { rulePrincipalId } from "../../src/automation/rule";
import type { DeviceClient } from "../../src/device-sdk";
import {
  CommandsDocument,
  CreateRuleDocument,
  DeleteRuleDocument,
  RulesDocument,
  SetRuleEnabledDocument,
  type RuleInput,
} from "../generated/graphql";
import type { GraphQLTestClient } from "../kit/graphql-client";
import { startTestGateway, waitForStatus, type TestGateway } from "../kit/gateway";
import { readMetric, waitForMetric } from "../kit/metrics";
import { MOSQUITTO_URL, uniqueName } from "../kit/store";

const HANDLED = "gateway_telemetry_messages_total";
/** Handled counts a message the engine threw on too: a negative check must also see that none failed. */
const failedEvaluations = (url: string) => readMetric(url, "gateway_telemetry_dropped_total", { reason: "failed" });

const tooHot = (overrides: Partial<RuleInput> = {}): RuleInput => ({
  name: "too hot",
  model: "thermostat",
  when: { temperature: { $gt: 30 } },
  commandType: "thermostat.setTemperature",
  commandPayload: { celsius: 18 },
  ...overrides,
});

async function automationCommands(client: GraphQLTestClient, deviceId: string) {
  const { commands } = await client.data(CommandsDocument, { filter: { deviceId, source: "AUTOMATION" }, first: 200 });
  return commands.edges.map((e) => e.node);
}

async function ruleById(client: GraphQLTestClient, id: string) {
  const { rules } = await client.data(RulesDocument);
  const rule = rules.find((r) => r.id === id);
  assert.ok(rule, `rule ${id} is listed`);
  return rule;
}

describe("automation rules", () => {
  let kit: TestGateway;
  let admin: GraphQLTestClient;
  before(async () => {
    kit = await startTestGateway();
    admin = await kit.as("admin");
  });
  after(() => kit.stop());

  /** Publishes telemetry and resolves once the gateway has evaluated all of it (none failed), rules fired included. */
  async function publish(...batches: Array<[DeviceClient, Array<Record<string, unknown>>]>) {
    const [handled, failed] = await Promise.all([readMetric(kit.url, HANDLED), failedEvaluations(kit.url)]);
    await Promise.all(batches.flatMap(([device, messages]) => messages.map((m) => device.publishTelemetry(m))));
    await waitForMetric(kit.url, HANDLED, handled + batches.reduce((n, [, messages]) => n + messages.length, 0));
    assert.equal(await failedEvaluations(kit.url), failed, "no telemetry failed to evaluate");
  }

  it("telemetry matching a rule in scope sends its command as AUTOMATION; anything else sends nothing", async () => {
    const deviceId = uniqueName("th-");
    const device = await kit.device(deviceId, "thermostat", { site: "site-a" });
    const elsewhereId = uniqueName("th-");
    const elsewhere = await kit.device(elsewhereId, "thermostat", { site: "site-b" });
    const { createRule: rule } = await admin.data(CreateRuleDocument, { input: tooHot({ site: "site-a" }) });
    assert.equal(rule.enabled, true);
    assert.equal(rule.cooldownSeconds, 60);
    assert.equal(rule.fireCount, 0);
    assert.deepEqual(rule.when, { temperature: { $gt: 30 } });

    // Below the threshold, a string (MongoDB compares numbers with numbers only), another field, another site.
    await publish([device, [{ temperature: 25 }, { temperature: "35" }, { humidity: 99 }]]);
    await publish([elsewhere, [{ temperature: 40 }]]);
    assert.deepEqual(await automationCommands(admin, deviceId), []);
    assert.deepEqual(await automationCommands(admin, elsewhereId), []);

    await publish([device, [{ temperature: 31.5, humidity: 40 }]]);
    const [command, ...more] = await automationCommands(admin, deviceId);
    assert.ok(command);
    assert.equal(more.length, 0);
    assert.equal(command.source, "AUTOMATION");
    assert.equal(command.issuedBy, rulePrincipalId(rule.id));
    assert.equal(command.type, "thermostat.setTemperature");
    assert.deepEqual(command.payload, { celsius: 18 });
    await waitForStatus(admin, command.id, "SUCCEEDED");

    const fired = await ruleById(admin, rule.id);
    assert.equal(fired.fireCount, 1);
    assert.ok(fired.lastFiredAt);
    assert.equal(fired.lastError, null);
  });

  it("a rule can send to another device of the tenant", async () => {
    const sensorId = uniqueName("sensor-");
    const sensor = await kit.device(sensorId, "thermostat", { site: "site-c" });
    const valveId = uniqueName("va-");
    await kit.device(valveId, "valve", { site: "site-c" });
    const { createRule: rule } = await admin.data(CreateRuleDocument, {
      input: { name: "flood", deviceId: sensorId, when: { "water.level": { $gte: 3 } }, commandType: "valve.close", targetDeviceId: valveId },
    });
    assert.equal(rule.targetDeviceId, valveId);
    assert.deepEqual(rule.commandPayload, {});
    await publish([sensor, [{ water: { level: 3 } }]]);
    const [command] = await automationCommands(admin, valveId);
    assert.equal(command?.type, "valve.close");
    assert.deepEqual(await automationCommands(admin, sensorId), []);
  });

  it("a flood of matching telemetry fires once per cooldown, per device", async () => {
    const first = await kit.device(uniqueName("th-"), "thermostat", { site: "flood" });
    const second = await kit.device(uniqueName("th-"), "thermostat", { site: "flood" });
    const { createRule: rule } = await admin.data(CreateRuleDocument, { input: tooHot({ site: "flood", cooldownSeconds: 3600 }) });
    const sent = await readMetric(kit.url, "gateway_rule_firings_total", { outcome: "sent" });
    const flood = Array.from({ length: 300 }, (_, i) => ({ temperature: 31 + (i % 5), i }));
    await publish([first, flood], [second, flood.slice(0, 100)]);

    assert.equal((await automationCommands(admin, first.deviceId)).length, 1);
    assert.equal((await automationCommands(admin, second.deviceId)).length, 1);
    assert.equal((await ruleById(admin, rule.id)).fireCount, 2);
    assert.equal(await readMetric(kit.url, "gateway_rule_firings_total", { outcome: "sent" }), sent + 2);
  });

  it("refuses rules that could never fire, storing nothing", async () => {
    const foreignTenant = uniqueName("other-");
    const foreignId = uniqueName("th-");
    await kit.gateway.services.devices.register({ kind: "user", id: "other-admin", tenant: foreignTenant, roles: ["admin"] }, { id: foreignId, site: "s", model: "thermostat" });
    const valveId = uniqueName("va-");
    await kit.device(valveId, "valve", { connect: false });
    const before = (await admin.data(RulesDocument)).rules.length;

    const cases: Array<[string, RuleInput, { field: string; pointer?: string }]> = [
      ["unknown command type", tooHot({ commandType: "oven.preheat" }), { field: "commandType" }],
      ["payload against the schema", tooHot({ commandPayload: { celsius: 99 } }), { field: "commandPayload", pointer: "/celsius" }],
      ["payload field not in the schema", tooHot({ commandPayload: { celsius: 20, fan: true } }), { field: "commandPayload", pointer: "/fan" }],
      ["$where", tooHot({ when: { $where: "this.temperature > 30" } }), { field: "when", pointer: "/$where" }],
      ["$expr", tooHot({ when: { $expr: { $gt: ["$temperature", 30] } } }), { field: "when", pointer: "/$expr" }],
      ["$function", tooHot({ when: { t: { $function: { body: "return true", args: [], lang: "js" } } } }), { field: "when", pointer: "/t/$function" }],
      ["unknown operator", tooHot({ when: { $or: [{ temperature: { $gt: 30 } }, { temperature: { $near: 1 } }] } }), { field: "when", pointer: "/$or/1/temperature/$near" }],
      ["a condition that is not an object", tooHot({ when: [{ temperature: 30 }] }), { field: "when", pointer: "" }],
      ["a target device of another tenant", tooHot({ targetDeviceId: foreignId }), { field: "targetDeviceId" }],
      ["a target device that does not exist", tooHot({ targetDeviceId: uniqueName("nobody-") }), { field: "targetDeviceId" }],
      ["a type the target's model does not accept", tooHot({ model: undefined, targetDeviceId: valveId }), { field: "commandType" }],
      ["a type the scope's model does not accept", tooHot({ model: "valve" }), { field: "commandType" }],
      ["a zero cooldown", tooHot({ cooldownSeconds: 0 }), { field: "cooldownSeconds" }],
      ["an empty name", tooHot({ name: " " }), { field: "name" }],
    ];
    for (const [what, input, expected] of cases) {
      const response = await admin.request(CreateRuleDocument, { input });
      const extensions = response.errors?.[0]?.extensions;
      assert.equal(extensions?.code, "BAD_USER_INPUT", `${what}: ${JSON.stringify(response)}`);
      assert.equal(extensions?.field, expected.field, what);
      if (expected.pointer !== undefined) assert.equal(extensions?.pointer, expected.pointer, what);
    }
    // A foreign device and a missing one are refused alike.
    const foreign = await admin.request(CreateRuleDocument, { input: tooHot({ targetDeviceId: foreignId }) });
    assert.doesNotMatch(foreign.errors?.[0]?.message ?? "", /tenant .*other-/);
    assert.equal((await admin.data(RulesDocument)).rules.length, before);
  });

  it("viewers and operators list rules but may not create, change or delete them", async () => {
    const { createRule: rule } = await admin.data(CreateRuleDocument, { input: tooHot({ name: "listed", site: "nowhere" }) });
    for (const role of ["viewer", "operator"] as const) {
      const client = await kit.as(role);
      assert.ok((await client.data(RulesDocument)).rules.some((r) => r.id === rule.id), `${role} lists`);
      assert.equal(await client.errorCode(CreateRuleDocument, { input: tooHot() }), "FORBIDDEN");
      assert.equal(await client.errorCode(SetRuleEnabledDocument, { id: rule.id, enabled: false }), "FORBIDDEN");
      assert.equal(await client.errorCode(DeleteRuleDocument, { id: rule.id }), "FORBIDDEN");
    }
    assert.equal((await ruleById(admin, rule.id)).enabled, true);
    // Another tenant sees none of them and cannot touch them.
    const stranger = await kit.as("admin", { tenant: uniqueName("other-") });
    assert.deepEqual((await stranger.data(RulesDocument)).rules, []);
    assert.equal(await stranger.errorCode(SetRuleEnabledDocument, { id: rule.id, enabled: false }), "NOT_FOUND");
    assert.equal(await stranger.errorCode(DeleteRuleDocument, { id: rule.id }), "NOT_FOUND");
  });

  it("a disabled rule stays silent until enabled again", async () => {
    const device = await kit.device(uniqueName("th-"), "thermostat", { site: "quiet" });
    const { createRule: rule } = await admin.data(CreateRuleDocument, { input: tooHot({ site: "quiet" }) });
    const { setRuleEnabled } = await admin.data(SetRuleEnabledDocument, { id: rule.id, enabled: false });
    assert.equal(setRuleEnabled.enabled, false);
    await publish([device, [{ temperature: 40 }]]);
    assert.deepEqual(await automationCommands(admin, device.deviceId), []);
    assert.equal((await ruleById(admin, rule.id)).fireCount, 0);

    await admin.data(SetRuleEnabledDocument, { id: rule.id, enabled: true });
    await publish([device, [{ temperature: 40 }]]);
    assert.equal((await automationCommands(admin, device.deviceId)).length, 1);
  });

  it("deleteRule removes the rule: it is no longer listed and never fires", async () => {
    const device = await kit.device(uniqueName("th-"), "thermostat", { site: "gone" });
    const { createRule: rule } = await admin.data(CreateRuleDocument, { input: tooHot({ site: "gone" }) });
    assert.equal((await admin.data(DeleteRuleDocument, { id: rule.id })).deleteRule, true);
    assert.ok(!(await admin.data(RulesDocument)).rules.some((r) => r.id === rule.id));
    assert.equal(await admin.errorCode(DeleteRuleDocument, { id: rule.id }), "NOT_FOUND");
    assert.equal(await admin.errorCode(SetRuleEnabledDocument, { id: rule.id, enabled: true }), "NOT_FOUND");
    await publish([device, [{ temperature: 40 }]]);
    assert.deepEqual(await automationCommands(admin, device.deviceId), []);

    // Positive control: the same telemetry fires a rule that exists.
    await admin.data(CreateRuleDocument, { input: tooHot({ site: "gone" }) });
    await publish([device, [{ temperature: 40 }]]);
    assert.equal((await automationCommands(admin, device.deviceId)).length, 1);
  });

  it("a rule aimed at another tenant's device is refused by the command API: nothing sent, lastError kept", async () => {
    const device = await kit.device(uniqueName("th-"), "thermostat", { site: "cross" });
    const foreignId = uniqueName("th-");
    await kit.gateway.services.devices.register({ kind: "user", id: "other-admin", tenant: uniqueName("other-"), roles: ["admin"] }, { id: foreignId, site: "s", model: "thermostat" });
    // What createRule refuses, written to the store directly (as if the target had changed hands since),
    // then enabled through the API so that the gateway reads it at once.
    const now = new Date();
    const id = uniqueName("rule-");
    await kit.gateway.repositories.rules.insert({
      id,
      tenant: kit.tenant,
      name: "cross-tenant",
      enabled: false,
      site: "cross",
      when: { temperature: { $gt: 30 } },
      commandType: "thermostat.setTemperature",
      commandPayload: { celsius: 18 },
      targetDeviceId: foreignId,
      cooldownSeconds: 60,
      createdBy: "test",
      createdAt: now,
      updatedAt: now,
    });
    await admin.data(SetRuleEnabledDocument, { id, enabled: true });
    const refused = await readMetric(kit.url, "gateway_rule_firings_total", { outcome: "refused" });
    await publish([device, [{ temperature: 35 }]]);

    const rule = await ruleById(admin, id);
    assert.match(rule.lastError ?? "", /^NOT_FOUND: /);
    assert.equal(rule.fireCount, 0);
    assert.equal(rule.lastFiredAt, null);
    assert.equal(await kit.gateway.repositories.commands.count({ deviceId: foreignId }), 0);
    assert.equal(await kit.gateway.repositories.commands.count({ issuedBy: rulePrincipalId(id) }), 0);
    assert.equal(await readMetric(kit.url, "gateway_rule_firings_total", { outcome: "refused" }), refused + 1);
  });

  it("drops and counts telemetry that is not a JSON object or too large; the embedded broker refuses an unregistered device at CONNECT", async () => {
    const device = await kit.device(uniqueName("th-"), "thermostat", { connect: false });
    const stranger = uniqueName("unregistered-");
    const topic = (id: string) => `${kit.topicPrefix}/devices/${id}/telemetry`;
    const dropped = async (reason: string) => readMetric(kit.url, "gateway_telemetry_dropped_total", { reason });
    const reasons = ["malformed", "not_object", "oversized"];
    const beforeCounts = await Promise.all(reasons.map(dropped));
    const handled = await readMetric(kit.url, HANDLED);
    const refusedConnects = { action: "connect", reason: "unregistered_device" };
    const refusedBefore = await readMetric(kit.url, "gateway_mqtt_refused_total", refusedConnects);

    await assert.rejects(mqtt.connectAsync(kit.gateway.mqttUrl, { clientId: stranger, protocolVersion: 4, reconnectPeriod: 0 }), /Not authorized/i);
    assert.equal(await readMetric(kit.url, "gateway_mqtt_refused_total", refusedConnects), refusedBefore + 1);
    const raw = await mqtt.connectAsync(kit.gateway.mqttUrl, { clientId: device.deviceId, protocolVersion: 4, reconnectPeriod: 0 });
    try {
      await raw.publishAsync(topic(device.deviceId), "{not json", { qos: 1 });
      await raw.publishAsync(topic(device.deviceId), "[1, 2]", { qos: 1 });
      await raw.publishAsync(topic(device.deviceId), "42", { qos: 1 });
      await raw.publishAsync(topic(device.deviceId), JSON.stringify({ blob: "x".repeat(70 * 1024) }), { qos: 1 });
    } finally {
      await raw.endAsync();
    }
    await waitForMetric(kit.url, HANDLED, handled + 4);
    const afterCounts = await Promise.all(reasons.map(dropped));
    assert.deepEqual(
      afterCounts.map((n, i) => n - beforeCounts[i]!),
      [1, 2, 1],
    );
  });

});

describe("automation rules on two gateways sharing a store and a broker", () => {
  let a: TestGateway;
  let b: TestGateway;
  before(async () => {
    const env = { MQTT_SHARED_GROUP: uniqueName("g") };
    a = await startTestGateway({ broker: "mosquitto", env });
    b = await startTestGateway({ broker: "mosquitto", env, database: a.database, topicPrefix: a.topicPrefix });
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
  });

  async function flood(device: DeviceClient, count: number) {
    const urls = [a.url, b.url];
    const handled = await Promise.all(urls.map((url) => readMetric(url, HANDLED)));
    const failed = await Promise.all(urls.map(failedEvaluations));
    await Promise.all(Array.from({ length: count }, (_, i) => device.publishTelemetry({ temperature: 40, i })));
    await waitForMetric(urls, HANDLED, handled[0]! + handled[1]! + count);
    const after = await Promise.all(urls.map((url) => readMetric(url, HANDLED)));
    assert.deepEqual(await Promise.all(urls.map(failedEvaluations)), failed, "no telemetry failed to evaluate");
    // The shared subscription spread the flood: both replicas evaluated some of it.
    assert.ok(after[0]! > handled[0]! && after[1]! > handled[1]!, `both replicas got telemetry: ${handled} → ${after}`);
  }

  it("telemetry from an unregistered device (a broker that lets it in) is dropped and counted", async () => {
    const urls = [a.url, b.url];
    const labels = { reason: "unregistered_device" };
    const before = (await Promise.all(urls.map((url) => readMetric(url, "gateway_telemetry_dropped_total", labels)))).reduce((x, y) => x + y);
    const stranger = uniqueName("unregistered-");
    const raw = await mqtt.connectAsync(MOSQUITTO_URL, { clientId: stranger, protocolVersion: 4, reconnectPeriod: 0 });
    try {
      await raw.publishAsync(`${a.topicPrefix}/devices/${stranger}/telemetry`, JSON.stringify({ temperature: 99 }), { qos: 1 });
    } finally {
      await raw.endAsync();
    }
    await waitForMetric(urls, "gateway_telemetry_dropped_total", before + 1, labels);
  });

  it("a flood spread over both replicas fires once, and a rule disabled on one stops on both", async () => {
    const admin = await a.as("admin");
    const first = await a.device(uniqueName("th-"), "thermostat");
    const { createRule: rule } = await admin.data(CreateRuleDocument, { input: tooHot({ cooldownSeconds: 3600 }) });

    await flood(first, 200);
    assert.equal((await automationCommands(admin, first.deviceId)).length, 1);
    assert.equal((await ruleById(admin, rule.id)).fireCount, 1);

    // Replica b has the rule in its cache from the flood above; a device that never fired shows it stops anyway.
    const second = await a.device(uniqueName("th-"), "thermostat");
    await admin.data(SetRuleEnabledDocument, { id: rule.id, enabled: false });
    await flood(second, 50);
    assert.deepEqual(await automationCommands(admin, second.deviceId), []);
  });
});
