import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { rulePrincipalId } from "../../src/automation/rule";
import {
  CreateApiKeyDocument,
  CreateRuleDocument,
  DeletePayloadLimitDocument,
  EffectivePayloadSchemasDocument,
  PayloadLimitsDocument,
  RulesDocument,
  SendCommandDocument,
  SetPayloadLimitDocument,
  type PayloadLimitInput,
  type SendCommandInput,
} from "../generated/graphql";
import { GraphQLTestClient } from "../kit/graphql-client";
import { startTestGateway, waitForStatus, type TestGateway } from "../kit/gateway";
import { readMetric, waitForMetric } from "../kit/metrics";
import { uniqueName } from "../kit/store";

const SET_TEMPERATURE = "thermostat.setTemperature";
const comfortable = { properties: { celsius: { minimum: 18, maximum: 24 } } };
const setpoint = (deviceId: string, celsius: number): SendCommandInput => ({ deviceId, type: SET_TEMPERATURE, payload: { celsius } });

/** The refusal's code and where it points; the request must fail. */
async function refusal(client: GraphQLTestClient, input: SendCommandInput) {
  const response = await client.request(SendCommandDocument, { input });
  const extensions = response.errors?.[0]?.extensions;
  assert.ok(extensions, `expected a refusal, got ${JSON.stringify(response)}`);
  return { code: extensions.code, pointer: extensions.pointer, message: response.errors![0]!.message };
}

async function effectiveSchema(client: GraphQLTestClient, type: string, site?: string) {
  const { commandTypes } = await client.data(EffectivePayloadSchemasDocument, { site });
  const found = commandTypes.find((t) => t.name === type);
  assert.ok(found, type);
  return found;
}

const celsiusRange = (schema: unknown) => (schema as { properties: { celsius: unknown } }).properties.celsius;

describe("payload limits", () => {
  let kit: TestGateway;
  let admin: GraphQLTestClient;
  before(async () => {
    kit = await startTestGateway();
    admin = await kit.as("admin");
  });
  after(() => kit.stop());

  async function apiKey(commandTypes = [SET_TEMPERATURE]) {
    const { createApiKey } = await admin.data(CreateApiKeyDocument, { name: uniqueName("partner-"), commandTypes });
    return { id: createApiKey.id, client: new GraphQLTestClient(kit.url, { apiKey: createApiKey.key }) };
  }

  const setLimit = (input: PayloadLimitInput) => admin.data(SetPayloadLimitDocument, { input }).then((r) => r.setPayloadLimit);

  it("an API key limited to 18–24 °C is refused at 25 with the pointer /celsius and nothing stored, while an admin may send 25", async () => {
    const device = await kit.device(uniqueName("th-"), "thermostat");
    const key = await apiKey();
    const limit = await setLimit({ subject: `apikey:${key.id}`, commandType: SET_TEMPERATURE, schema: comfortable });
    assert.equal(limit.site, null);
    assert.deepEqual(limit.schema, comfortable);

    for (const celsius of [25, 17.5]) {
      const refused = await refusal(key.client, setpoint(device.deviceId, celsius));
      assert.equal(refused.code, "FORBIDDEN");
      assert.equal(refused.pointer, "/celsius");
      assert.match(refused.message, /limit/);
    }
    assert.equal(await kit.gateway.repositories.commands.count({ deviceId: device.deviceId }), 0);

    const { sendCommand: allowed } = await key.client.data(SendCommandDocument, { input: setpoint(device.deviceId, 24) });
    await waitForStatus(admin, allowed.id, "SUCCEEDED");
    const { sendCommand: byAdmin } = await admin.data(SendCommandDocument, { input: setpoint(device.deviceId, 25) });
    await waitForStatus(admin, byAdmin.id, "SUCCEEDED");
    // The refused payloads never reached the device: it ran exactly the two allowed commands.
    assert.equal(device.received, 2);
  });

  it("effectivePayloadSchema is the type's schema narrowed for the caller; others see the type's own", async () => {
    const key = await apiKey();
    await setLimit({ subject: `apikey:${key.id}`, commandType: SET_TEMPERATURE, schema: { properties: { celsius: { minimum: 18, maximum: 26 } } } });
    await setLimit({ subject: `apikey:${key.id}`, site: "site-x", commandType: SET_TEMPERATURE, schema: { properties: { celsius: { exclusiveMaximum: 22 } } } });

    const forKey = await effectiveSchema(key.client, SET_TEMPERATURE);
    assert.equal(forKey.supersedes, true);
    assert.deepEqual(celsiusRange(forKey.effectivePayloadSchema), { type: "number", minimum: 18, maximum: 26 });
    assert.deepEqual(celsiusRange((await effectiveSchema(key.client, SET_TEMPERATURE, "site-x")).effectivePayloadSchema), {
      type: "number",
      minimum: 18,
      exclusiveMaximum: 22,
    });
    const forAdmin = await effectiveSchema(admin, SET_TEMPERATURE);
    assert.deepEqual(forAdmin.effectivePayloadSchema, forAdmin.payloadSchema);
    assert.equal((await effectiveSchema(admin, "valve.open")).supersedes, false);
  });

  it("a role's limit for a site applies to that site's devices only", async () => {
    const inSite = await kit.device(uniqueName("th-"), "thermostat", { site: "cold-room", connect: false });
    const elsewhere = await kit.device(uniqueName("th-"), "thermostat", { site: "office", connect: false });
    await setLimit({ subject: "role:operator", site: "cold-room", commandType: SET_TEMPERATURE, schema: { properties: { celsius: { maximum: 8 } } } });
    const operator = await kit.as("operator");
    const refused = await refusal(operator, setpoint(inSite.deviceId, 12));
    assert.deepEqual([refused.code, refused.pointer], ["FORBIDDEN", "/celsius"]);
    await operator.data(SendCommandDocument, { input: setpoint(inSite.deviceId, 6) });
    await operator.data(SendCommandDocument, { input: setpoint(elsewhere.deviceId, 12) });
    // An admin is another subject: the operators' limit is not its own.
    await admin.data(SendCommandDocument, { input: setpoint(inSite.deviceId, 12) });
    assert.equal(await kit.gateway.repositories.commands.count({ deviceId: inSite.deviceId }), 2);
  });

  it("setting again replaces the limit; deletePayloadLimit removes it; each tenant sees and touches only its own", async () => {
    const device = await kit.device(uniqueName("th-"), "thermostat", { connect: false, site: "replace" });
    const viewerSubject = { subject: "role:viewer", site: "replace", commandType: SET_TEMPERATURE };
    const first = await setLimit({ ...viewerSubject, schema: { properties: { celsius: { maximum: 20 } } } });
    const second = await setLimit({ ...viewerSubject, schema: { properties: { celsius: { maximum: 30 } } } });
    assert.equal(second.id, first.id);
    const listed = (await admin.data(PayloadLimitsDocument)).payloadLimits.filter((l) => l.id === first.id);
    assert.deepEqual(listed, [second]);

    const stranger = await kit.as("admin", { tenant: uniqueName("other-") });
    assert.deepEqual((await stranger.data(PayloadLimitsDocument)).payloadLimits, []);
    assert.equal(await stranger.errorCode(DeletePayloadLimitDocument, { id: first.id }), "NOT_FOUND");

    // Operators are limited once an operator limit exists, and free again once it is deleted.
    const operatorLimit = await setLimit({ subject: "role:operator", site: "replace", commandType: SET_TEMPERATURE, schema: { properties: { celsius: { maximum: 20 } } } });
    const operator = await kit.as("operator");
    assert.equal((await refusal(operator, setpoint(device.deviceId, 25))).code, "FORBIDDEN");
    assert.equal((await admin.data(DeletePayloadLimitDocument, { id: operatorLimit.id })).deletePayloadLimit, true);
    await operator.data(SendCommandDocument, { input: setpoint(device.deviceId, 25) });
    assert.equal(await admin.errorCode(DeletePayloadLimitDocument, { id: operatorLimit.id }), "NOT_FOUND");
    assert.ok(!(await admin.data(PayloadLimitsDocument)).payloadLimits.some((l) => l.id === operatorLimit.id));
  });

  it("only admins set, delete and list limits", async () => {
    const { id } = await setLimit({ subject: "role:viewer", commandType: "valve.open", schema: { properties: { seconds: { maximum: 60 } } } });
    const key = await apiKey();
    for (const client of [await kit.as("operator"), await kit.as("viewer"), key.client]) {
      assert.equal(await client.errorCode(SetPayloadLimitDocument, { input: { subject: "role:viewer", commandType: "valve.open", schema: {} } }), "FORBIDDEN");
      assert.equal(await client.errorCode(DeletePayloadLimitDocument, { id }), "FORBIDDEN");
      assert.equal(await client.errorCode(PayloadLimitsDocument), "FORBIDDEN");
    }
    assert.ok((await admin.data(PayloadLimitsDocument)).payloadLimits.some((l) => l.id === id));
  });

  it("refuses limits that are malformed or could never be met, storing nothing", async () => {
    const before = (await admin.data(PayloadLimitsDocument)).payloadLimits.length;
    const valid: PayloadLimitInput = { subject: "role:operator", commandType: SET_TEMPERATURE, schema: comfortable };
    const cases: Array<[string, PayloadLimitInput, { field: string; pointer?: string }]> = [
      ["minimum above the type's maximum", { ...valid, schema: { properties: { celsius: { minimum: 40 } } } }, { field: "schema", pointer: "/properties/celsius/minimum" }],
      ["an empty range", { ...valid, schema: { properties: { celsius: { minimum: 24, maximum: 18 } } } }, { field: "schema", pointer: "/properties/celsius/minimum" }],
      ["a field the type does not have", { ...valid, schema: { properties: { fahrenheit: { maximum: 70 } } } }, { field: "schema", pointer: "/properties/fahrenheit" }],
      ["not a JSON Schema", { ...valid, schema: { properties: { celsius: { maximum: "hot" } } } }, { field: "schema", pointer: "" }],
      ["a keyword limits do not support", { ...valid, schema: { properties: { celsius: { $ref: "#" } } } }, { field: "schema", pointer: "/properties/celsius/$ref" }],
      ["a schema that is not an object", { ...valid, schema: [comfortable] }, { field: "schema", pointer: "" }],
      ["an unknown subject kind", { ...valid, subject: "user:alice" }, { field: "subject" }],
      ["an unknown role", { ...valid, subject: "role:root" }, { field: "subject" }],
      ["an unknown command type", { ...valid, commandType: "oven.preheat" }, { field: "commandType" }],
      ["a malformed site", { ...valid, site: "two words" }, { field: "site" }],
    ];
    for (const [what, input, expected] of cases) {
      const response = await admin.request(SetPayloadLimitDocument, { input });
      const extensions = response.errors?.[0]?.extensions;
      assert.equal(extensions?.code, "BAD_USER_INPUT", `${what}: ${JSON.stringify(response)}`);
      assert.equal(extensions?.field, expected.field, what);
      if (expected.pointer !== undefined) assert.equal(extensions?.pointer, expected.pointer, what);
    }
    assert.equal((await admin.data(PayloadLimitsDocument)).payloadLimits.length, before);
  });

  it("a rule whose payload breaks a limit set after its creation records that in lastError and sends nothing", async () => {
    const device = await kit.device(uniqueName("th-"), "thermostat", { site: "ruled" });
    const { createRule: rule } = await admin.data(CreateRuleDocument, {
      input: { name: "too hot", site: "ruled", when: { temperature: { $gt: 30 } }, commandType: SET_TEMPERATURE, commandPayload: { celsius: 16 } },
    });
    await setLimit({ subject: rulePrincipalId(rule.id), commandType: SET_TEMPERATURE, schema: comfortable });
    const handled = await readMetric(kit.url, "gateway_telemetry_messages_total");
    await device.publishTelemetry({ temperature: 35 });
    await waitForMetric(kit.url, "gateway_telemetry_messages_total", handled + 1);

    const stored = (await admin.data(RulesDocument)).rules.find((r) => r.id === rule.id);
    assert.match(stored?.lastError ?? "", /^FORBIDDEN: payload\/celsius .*limit/);
    assert.equal(stored?.fireCount, 0);
    assert.equal(await kit.gateway.repositories.commands.count({ issuedBy: rulePrincipalId(rule.id) }), 0);
    assert.equal(device.received, 0);
  });
});

describe("payload limits on two gateways sharing a store and a broker", () => {
  let a: TestGateway;
  let b: TestGateway;
  before(async () => {
    a = await startTestGateway({ broker: "mosquitto" });
    b = await startTestGateway({ broker: "mosquitto", database: a.database, topicPrefix: a.topicPrefix });
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
  });

  it("a limit set on one replica applies on the other at once, although it had the tenant's limits cached", async () => {
    const device = await a.device(uniqueName("th-"), "thermostat", { connect: false });
    // Same tenant on both: b's client signs for a's tenant.
    const operatorOnB = await b.as("operator", { tenant: a.tenant });
    await operatorOnB.data(SendCommandDocument, { input: setpoint(device.deviceId, 30) });
    assert.deepEqual(celsiusRange((await effectiveSchema(operatorOnB, SET_TEMPERATURE)).effectivePayloadSchema), { type: "number", minimum: 5, maximum: 35 });

    const adminOnA = await a.as("admin");
    await adminOnA.data(SetPayloadLimitDocument, { input: { subject: "role:operator", commandType: SET_TEMPERATURE, schema: comfortable } });
    // Far sooner than the cache's time to live: the change was announced over the bus.
    const deadline = Date.now() + 5_000;
    while (JSON.stringify(celsiusRange((await effectiveSchema(operatorOnB, SET_TEMPERATURE)).effectivePayloadSchema)) !== JSON.stringify({ type: "number", minimum: 18, maximum: 24 })) {
      assert.ok(Date.now() < deadline, "replica b did not hear of the new limit");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const refused = await refusal(operatorOnB, setpoint(device.deviceId, 30));
    assert.deepEqual([refused.code, refused.pointer], ["FORBIDDEN", "/celsius"]);
    assert.equal(await a.gateway.repositories.commands.count({ deviceId: device.deviceId }), 1);
  });
});
