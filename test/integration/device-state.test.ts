import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createSimulatedDevice } from "../../src/device-sdk";
import { DevicesStateDocument, DeviceStateDocument, DeviceUpdatedDocument, SendCommandDocument, type DeviceStateQuery } from "../generated/graphql";
import type { GraphQLTestClient } from "../kit/graphql-client";
import { startTestGateway, waitForStatus, type TestGateway } from "../kit/gateway";
import { readMetric, waitForMetric } from "../kit/metrics";
import { uniqueName } from "../kit/store";

type DeviceState = NonNullable<DeviceStateQuery["device"]>;

describe("device state", () => {
  let kit: TestGateway;
  let admin: GraphQLTestClient;
  let operator: GraphQLTestClient;
  before(async () => {
    kit = await startTestGateway();
    admin = await kit.as("admin");
    operator = await kit.as("operator");
  });
  after(() => kit.stop());

  const stateOf = async (id: string): Promise<DeviceState> => {
    const { device } = await admin.data(DeviceStateDocument, { id });
    assert.ok(device, `device ${id}`);
    return device;
  };
  /** Polls the device until `ready` holds: its reported state is written after the command's transition. */
  const waitForState = async (id: string, ready: (state: DeviceState) => boolean, timeoutMs = 10_000): Promise<DeviceState> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = await stateOf(id);
      if (ready(state)) return state;
      if (Date.now() > deadline) throw new Error(`device ${id} never reached the expected state: ${JSON.stringify(state)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const publishTelemetry = async (device: { publishTelemetry(t: Record<string, unknown>): Promise<void> }, telemetry: Record<string, unknown>) => {
    const handled = await readMetric(kit.url, "gateway_telemetry_messages_total");
    await device.publishTelemetry(telemetry);
    await waitForMetric(kit.url, "gateway_telemetry_messages_total", handled + 1);
  };

  it("desired shows 22 and inSync false while the thermostat is offline; reported 22 and inSync true once it is back and succeeded", async () => {
    const thermostat = await kit.device(uniqueName("th-"), "thermostat", { connect: false });
    const fresh = await stateOf(thermostat.deviceId);
    assert.deepEqual([fresh.reported, fresh.desired, fresh.inSync, fresh.pendingCommands, fresh.stateUpdatedAt], [{}, {}, true, 0, null]);

    const { sendCommand } = await operator.data(SendCommandDocument, { input: { deviceId: thermostat.deviceId, type: "thermostat.setTemperature", payload: { celsius: 22 } } });
    const offline = await stateOf(thermostat.deviceId);
    assert.deepEqual([offline.online, offline.reported, offline.desired, offline.inSync, offline.pendingCommands], [false, {}, { setpoint: 22 }, false, 1]);

    await thermostat.start();
    await waitForStatus(admin, sendCommand.id, "SUCCEEDED");
    const synced = await waitForState(thermostat.deviceId, (s) => s.pendingCommands === 0 && s.inSync && s.stateUpdatedAt !== null);
    assert.deepEqual([synced.online, synced.reported, synced.desired], [true, { setpoint: 22 }, {}]);
    // Kept in the store, on the device document.
    assert.deepEqual((await kit.gateway.repositories.devices.findById(thermostat.deviceId))?.reported, { setpoint: 22 });
  });

  it("the same setpoint again costs no state write; a new one moves reported", async () => {
    const thermostat = await kit.device(uniqueName("th-"), "thermostat");
    const events = await admin.subscribe(DeviceUpdatedDocument, { id: thermostat.deviceId });
    try {
      const send = async (celsius: number) => {
        const seen = events.values.length;
        const { sendCommand } = await operator.data(SendCommandDocument, { input: { deviceId: thermostat.deviceId, type: "thermostat.setTemperature", payload: { celsius } } });
        await waitForStatus(admin, sendCommand.id, "SUCCEEDED");
        // Two announcements per command: created, and final (made after its state was written, if it was).
        await events.waitFor(() => events.values.length >= seen + 2);
      };
      await send(21);
      const first = await waitForState(thermostat.deviceId, (s) => s.stateUpdatedAt !== null);
      await send(21);
      assert.equal((await stateOf(thermostat.deviceId)).stateUpdatedAt, first.stateUpdatedAt);
      await send(23);
      const moved = await stateOf(thermostat.deviceId);
      assert.deepEqual(moved.reported, { setpoint: 23 });
      assert.ok(moved.stateUpdatedAt! > first.stateUpdatedAt!);
    } finally {
      await events.close();
    }
  });

  it("a command that fails drops out of desired and leaves reported as it was", async () => {
    const valve = await kit.device(uniqueName("va-"), "valve", { connect: false, failRate: 1 });
    const { sendCommand } = await operator.data(SendCommandDocument, { input: { deviceId: valve.deviceId, type: "valve.open", payload: { seconds: 5 } } });
    assert.deepEqual((await stateOf(valve.deviceId)).desired, { open: true });
    await valve.start();
    await waitForStatus(admin, sendCommand.id, "FAILED");
    const state = await stateOf(valve.deviceId);
    assert.deepEqual([state.reported, state.desired, state.inSync, state.pendingCommands], [{}, {}, true, 0]);
  });

  it("a page of devices gets each its own derived state (read for the page at once)", async () => {
    const site = uniqueName("page-");
    const ids = [uniqueName("th-"), uniqueName("th-"), uniqueName("va-")];
    await kit.device(ids[0]!, "thermostat", { site, connect: false });
    await kit.device(ids[1]!, "thermostat", { site, connect: false });
    await kit.device(ids[2]!, "valve", { site, connect: false });
    const send = (deviceId: string, type: string, payload: Record<string, unknown>) => operator.data(SendCommandDocument, { input: { deviceId, type, payload } });
    await send(ids[1]!, "thermostat.setTemperature", { celsius: 19 });
    await send(ids[1]!, "thermostat.setTemperature", { celsius: 20 });
    await send(ids[2]!, "valve.close", {});
    const { devices } = await admin.data(DevicesStateDocument, { site });
    const byId = Object.fromEntries(devices.edges.map(({ node }) => [node.id, [node.pendingCommands, node.desired, node.inSync]]));
    // The second setpoint superseded the first: one pending.
    assert.deepEqual(byId, { [ids[0]!]: [0, {}, true], [ids[1]!]: [1, { setpoint: 20 }, false], [ids[2]!]: [1, { open: false }, false] });
  });

  it("a telemetry message's state object merges into reported; null removes a key; anything else there is ignored", async () => {
    const thermostat = await kit.device(uniqueName("th-"), "thermostat");
    await publishTelemetry(thermostat, { temperature: 19.5, state: { mode: "eco", "fan.speed": 2, $weird: true } });
    assert.deepEqual((await stateOf(thermostat.deviceId)).reported, { mode: "eco", "fan.speed": 2, $weird: true });
    await publishTelemetry(thermostat, { state: { mode: null, setpoint: 20 } });
    assert.deepEqual((await stateOf(thermostat.deviceId)).reported, { "fan.speed": 2, $weird: true, setpoint: 20 });
    for (const state of ["on", [1, 2], 42]) await publishTelemetry(thermostat, { state });
    await publishTelemetry(thermostat, { temperature: 20 });
    assert.deepEqual((await stateOf(thermostat.deviceId)).reported, { "fan.speed": 2, $weird: true, setpoint: 20 });
  });

  it("deviceUpdated: presence, reported state and commands, to the tenant's readers only", async () => {
    const deviceId = uniqueName("th-");
    const thermostat = await kit.device(deviceId, "thermostat", { site: "site-a", connect: false });
    const marker = await kit.device(uniqueName("th-"), "thermostat", { site: "site-b", connect: false });
    const own = await operator.subscribe(DeviceUpdatedDocument, { id: deviceId });
    const bySite = await admin.subscribe(DeviceUpdatedDocument, { site: "site-b" });
    const strangerTenant = uniqueName("other-");
    const strangerId = uniqueName("th-");
    await kit.gateway.services.devices.register({ kind: "user", id: "other-admin", tenant: strangerTenant, roles: ["admin"] }, { id: strangerId, site: "site-a", model: "thermostat" });
    const stranger = createSimulatedDevice({ deviceId: strangerId, model: "thermostat", brokerUrl: kit.gateway.mqttUrl, topicPrefix: kit.topicPrefix });
    const otherTenant = await (await kit.as("admin", { tenant: strangerTenant })).subscribe(DeviceUpdatedDocument, {});
    const otherSite = await (await kit.as("operator", { sites: ["site-b"] })).subscribe(DeviceUpdatedDocument, {});
    try {
      await operator.data(SendCommandDocument, { input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 20 } } });
      await own.waitFor((e) => e.deviceUpdated.desired !== null && (e.deviceUpdated.desired as { setpoint?: number }).setpoint === 20);
      await thermostat.start();
      await own.waitFor((e) => e.deviceUpdated.online);
      await own.waitFor((e) => (e.deviceUpdated.reported as { setpoint?: number }).setpoint === 20 && e.deviceUpdated.inSync);
      await publishTelemetry(thermostat, { state: { mode: "away" } });
      await own.waitFor((e) => (e.deviceUpdated.reported as { mode?: string }).mode === "away");

      // The markers go online after all of the above: once a subscriber has its marker, it would have had the rest.
      await Promise.all([marker.start(), stranger.start()]);
      for (const subscription of [bySite, otherSite]) await subscription.waitFor((e) => e.deviceUpdated.id === marker.deviceId && e.deviceUpdated.online);
      await otherTenant.waitFor((e) => e.deviceUpdated.id === strangerId && e.deviceUpdated.online);
      assert.ok(bySite.values.every((e) => e.deviceUpdated.site === "site-b"));
      assert.ok(otherSite.values.every((e) => e.deviceUpdated.id === marker.deviceId));
      assert.ok(own.values.every((e) => e.deviceUpdated.id === deviceId && e.deviceUpdated.tenant === kit.tenant));
      assert.ok(otherTenant.values.every((e) => e.deviceUpdated.id === strangerId && e.deviceUpdated.tenant === strangerTenant));
      assert.deepEqual([...own.errors, ...bySite.errors, ...otherTenant.errors, ...otherSite.errors], []);
    } finally {
      await Promise.all([own, bySite, otherTenant, otherSite].map((s) => s.close()));
      await stranger.stop({ graceful: false });
    }
  });
});
