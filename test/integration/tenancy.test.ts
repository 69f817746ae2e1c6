import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  AlertRaisedDocument,
  AlertsDocument,
  ApiKeysDocument,
  CommandDocument,
  CommandsDocument,
  CommandUpdatedDocument,
  CreateApiKeyDocument,
  DeviceDocument,
  DevicesDocument,
  RegisterDeviceDocument,
  RevokeApiKeyDocument,
  SendCommandDocument,
  type AlertRaisedSubscription,
  type CommandUpdatedSubscription,
} from "../generated/graphql";
import { signToken } from "../../src/auth/jwt";
import { createSimulatedDevice, type DeviceClient } from "../../src/device-sdk";
import { GraphQLTestClient, type Subscription } from "../kit/graphql-client";
import { commandMarker, startTestGateway, TEST_JWT_SECRET, waitForStatus, type TestGateway } from "../kit/gateway";
import { readMetric, waitForMetric } from "../kit/metrics";
import { uniqueName } from "../kit/store";

const ALL_TYPES = ["thermostat.setTemperature", "valve.open", "valve.close", "device.reboot"];

/**
 * Tenant B, with every kind of principal it has, against tenant A's devices, commands and keys: every
 * query, mutation and subscription of the API. B sees nothing of A and changes nothing of A.
 */
describe("tenant isolation on every query, mutation and subscription", () => {
  let kit: TestGateway;
  const tenantB = uniqueName("tenant-b-");
  let adminA: GraphQLTestClient;
  let operatorA: GraphQLTestClient;
  const b: Record<"admin" | "operator" | "viewer" | "apiKey", GraphQLTestClient> = {} as never;
  let deviceA: DeviceClient;
  let offlineA: string;
  let deviceB: DeviceClient;
  let commandA: string;
  let commandB: string;
  let keyA: { id: string; key: string };

  before(async () => {
    kit = await startTestGateway();
    adminA = await kit.as("admin");
    operatorA = await kit.as("operator");
    const tokenB = (role: "admin" | "operator" | "viewer") => signToken(TEST_JWT_SECRET, { sub: `${role}-b`, tenant: tenantB, roles: [role] });
    b.admin = new GraphQLTestClient(kit.url, { token: await tokenB("admin") });
    b.operator = new GraphQLTestClient(kit.url, { token: await tokenB("operator") });
    b.viewer = new GraphQLTestClient(kit.url, { token: await tokenB("viewer") });

    deviceA = await kit.device(uniqueName("th-a-"), "thermostat", { site: "site-a" });
    offlineA = uniqueName("th-a-off-");
    await kit.device(offlineA, "thermostat", { site: "site-a", connect: false });
    const idB = uniqueName("th-b-");
    await b.admin.data(RegisterDeviceDocument, { input: { id: idB, site: "site-a", model: "thermostat" } });
    deviceB = createSimulatedDevice({ deviceId: idB, model: "thermostat", brokerUrl: kit.gateway.mqttUrl, topicPrefix: kit.topicPrefix, latencyMs: [0, 0] });
    await deviceB.start();

    keyA = (await adminA.data(CreateApiKeyDocument, { name: "partner a", commandTypes: ALL_TYPES })).createApiKey;
    const keyB = (await b.admin.data(CreateApiKeyDocument, { name: "partner b", commandTypes: ALL_TYPES })).createApiKey;
    b.apiKey = new GraphQLTestClient(kit.url, { apiKey: keyB.key });

    commandA = (await operatorA.data(SendCommandDocument, { input: { deviceId: deviceA.deviceId, type: "device.reboot" } })).sendCommand.id;
    await waitForStatus(operatorA, commandA, "SUCCEEDED");
    // B's own, for the positive controls: B's lists are not empty, so "none of A's" is not a check over nothing.
    commandB = (await b.operator.data(SendCommandDocument, { input: { deviceId: deviceB.deviceId, type: "device.reboot" } })).sendCommand.id;
    await waitForStatus(b.operator, commandB, "SUCCEEDED");
  });
  after(async () => {
    await deviceB?.stop({ graceful: false });
    await kit.stop();
  });

  for (const role of ["admin", "operator", "viewer", "apiKey"] as const) {
    describe(`tenant B's ${role}`, () => {
      it("command(id) of A's command: null", async () => {
        assert.equal((await b[role].data(CommandDocument, { id: commandA })).command, null);
      });
      it("commands, unfiltered and filtered by A's device: none of A's", async () => {
        const all = await b[role].data(CommandsDocument, { first: 200 });
        assert.ok(all.commands.edges.some((e) => e.node.id === commandB), "B's own command is listed");
        assert.ok(all.commands.edges.every((e) => e.node.deviceId !== deviceA.deviceId && e.node.id !== commandA));
        assert.deepEqual((await b[role].data(CommandsDocument, { filter: { deviceId: deviceA.deviceId } })).commands.edges, []);
      });
      it("device(id) of A's device: null; devices, with and without site: none of A's", async () => {
        assert.equal((await b[role].data(DeviceDocument, { id: deviceA.deviceId })).device, null);
        for (const site of [undefined, "site-a"]) {
          const { devices } = await b[role].data(DevicesDocument, { site, first: 200 });
          assert.ok(devices.edges.some((e) => e.node.id === deviceB.deviceId), `B's own device is listed (site ${site})`);
          assert.ok(devices.edges.every((e) => e.node.id !== deviceA.deviceId && e.node.id !== offlineA));
        }
      });
      it("sendCommand to A's device: NOT_FOUND, nothing stored", async () => {
        const before = await kit.gateway.repositories.commands.count();
        assert.equal(await b[role].errorCode(SendCommandDocument, { input: { deviceId: deviceA.deviceId, type: "device.reboot" } }), "NOT_FOUND");
        assert.equal(await kit.gateway.repositories.commands.count(), before);
      });
    });
  }

  describe("tenant B's admin", () => {
    it("registerDevice with A's device id: CONFLICT (ids are global MQTT client ids), and the device stays A's", async () => {
      assert.equal(await b.admin.errorCode(RegisterDeviceDocument, { input: { id: deviceA.deviceId, site: "site-b", model: "valve" } }), "CONFLICT");
      const { device } = await adminA.data(DeviceDocument, { id: deviceA.deviceId });
      assert.deepEqual([device?.tenant, device?.site, device?.model], [kit.tenant, "site-a", "thermostat"]);
    });
    it("apiKeys: only B's; revokeApiKey of A's key: NOT_FOUND, and A's key still works", async () => {
      const { apiKeys } = await b.admin.data(ApiKeysDocument);
      assert.deepEqual(apiKeys.map((k) => k.name), ["partner b"]);
      assert.equal(await b.admin.errorCode(RevokeApiKeyDocument, { id: keyA.id }), "NOT_FOUND");
      const partnerA = new GraphQLTestClient(kit.url, { apiKey: keyA.key });
      assert.equal((await partnerA.data(CommandDocument, { id: commandA })).command?.id, commandA);
    });
    it("createApiKey: the key belongs to B and reads nothing of A", async () => {
      const { createApiKey } = await b.admin.data(CreateApiKeyDocument, { name: "another b", commandTypes: ["device.reboot"] });
      const partner = new GraphQLTestClient(kit.url, { apiKey: createApiKey.key });
      assert.equal((await partner.data(CommandDocument, { id: commandA })).command, null);
      assert.equal((await adminA.data(ApiKeysDocument)).apiKeys.some((k) => k.id === createApiKey.id), false);
    });
  });

  describe("subscriptions", () => {
    it("B's subscribers, even those naming A's command or device, receive none of A's events; A's do", async () => {
      // A command for A's offline device: its id is known before it moves, so B can name it.
      const queued = (await operatorA.data(SendCommandDocument, { input: { deviceId: offlineA, type: "device.reboot" } })).sendCommand.id;
      const subscriptions: Array<Subscription<CommandUpdatedSubscription>> = [];
      const watch = async (client: GraphQLTestClient, variables: { id?: string; deviceId?: string } = {}) => {
        const subscription = await client.subscribe(CommandUpdatedDocument, variables);
        subscriptions.push(subscription);
        return subscription;
      };
      try {
        const open = await readMetric(kit.url, "gateway_subscriptions");
        const ownerView = await watch(operatorA, { id: queued });
        const bUnfiltered = await Promise.all([watch(b.admin), watch(b.operator), watch(b.viewer), watch(b.apiKey)]);
        const bNamed = await Promise.all([watch(b.admin, { id: queued }), watch(b.operator, { deviceId: offlineA }), watch(b.apiKey, { id: queued, deviceId: offlineA })]);
        // Barriers before A's events. Only A's events pass the filters of the owner's and of B's named
        // subscriptions, so no marker can show those registered: the server counts each one as it takes it
        // (its registration follows in the same turn), and the unfiltered ones, opened after, each get a
        // marker of B's, a command round trip later.
        await waitForMetric(kit.url, "gateway_subscriptions", open + 1 + bUnfiltered.length + bNamed.length, {}, 30_000);
        const bMarker = commandMarker(b.operator, { deviceId: deviceB.deviceId, type: "device.reboot" });
        for (const subscription of bUnfiltered) await subscription.ready(bMarker);

        const offline = createSimulatedDevice({ deviceId: offlineA, model: "thermostat", brokerUrl: kit.gateway.mqttUrl, topicPrefix: kit.topicPrefix, latencyMs: [0, 0] });
        await offline.start();
        try {
          await ownerView.waitFor((e) => e.commandUpdated.status === "SUCCEEDED");
          // A marker in B's own tenant, published after A's events: once B's subscribers have it, they would have had A's.
          const marker = (await b.operator.data(SendCommandDocument, { input: { deviceId: deviceB.deviceId, type: "device.reboot" } })).sendCommand.id;
          for (const subscription of bUnfiltered) await subscription.waitFor((e) => e.commandUpdated.id === marker && e.commandUpdated.status === "SUCCEEDED");
          for (const subscription of [...bUnfiltered, ...bNamed]) {
            assert.deepEqual(
              subscription.values.filter((e) => e.commandUpdated.id === queued || e.commandUpdated.deviceId === offlineA || e.commandUpdated.id === commandA),
              [],
            );
            assert.deepEqual(subscription.errors, []);
          }
        } finally {
          await offline.stop({ graceful: false });
        }
      } finally {
        await Promise.all(subscriptions.map((s) => s.close()));
      }
    });

    it("alerts and alertRaised: B sees its own alerts and none of A's", async () => {
      const failingA = await kit.device(uniqueName("fail-a-"), "thermostat", { failRate: 1 });
      const failingB = createSimulatedDevice({ deviceId: uniqueName("fail-b-"), model: "thermostat", brokerUrl: kit.gateway.mqttUrl, topicPrefix: kit.topicPrefix, failRate: 1 });
      await b.admin.data(RegisterDeviceDocument, { input: { id: failingB.deviceId, site: "site-a", model: "thermostat" } });
      await failingB.start();
      const subscriptions: Array<Subscription<AlertRaisedSubscription>> = [];
      try {
        const open = await readMetric(kit.url, "gateway_subscriptions");
        const ownerView = await operatorA.subscribe(AlertRaisedDocument);
        subscriptions.push(ownerView);
        for (const role of ["admin", "operator", "viewer", "apiKey"] as const) subscriptions.push(await b[role].subscribe(AlertRaisedDocument));
        // Taken by the server (registered in the same turn) before the first alert can be raised.
        await waitForMetric(kit.url, "gateway_subscriptions", open + subscriptions.length, {}, 30_000);
        const failedA = (await operatorA.data(SendCommandDocument, { input: { deviceId: failingA.deviceId, type: "device.reboot" } })).sendCommand.id;
        await ownerView.waitFor((e) => e.alertRaised.commandId === failedA);
        // B's own alert comes after A's on the bus: once B's subscribers have it, they would have had A's.
        const failedB = (await b.operator.data(SendCommandDocument, { input: { deviceId: failingB.deviceId, type: "device.reboot" } })).sendCommand.id;
        const bViews = subscriptions.slice(1);
        for (const [i, view] of bViews.entries()) {
          // An API key reads only commands and devices, not alerts (CONTRACT §2): it gets none at all.
          if (i === 3) continue;
          await view.waitFor((e) => e.alertRaised.commandId === failedB);
        }
        for (const view of bViews) assert.deepEqual(view.values.filter((e) => e.alertRaised.deviceId === failingA.deviceId), []);
        for (const role of ["admin", "operator", "viewer", "apiKey"] as const) {
          const { alerts } = await b[role].data(AlertsDocument, { first: 200 });
          assert.ok(alerts.edges.every((e) => e.node.commandId !== failedA && e.node.deviceId !== failingA.deviceId), role);
        }
        assert.ok((await operatorA.data(AlertsDocument, { first: 200 })).alerts.edges.some((e) => e.node.commandId === failedA));
      } finally {
        await Promise.all(subscriptions.map((s) => s.close()));
        await failingB.stop({ graceful: false });
      }
    });
  });
});
