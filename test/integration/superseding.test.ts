import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { CommandDocument, CommandUpdatedDocument, DeviceStateDocument, SendCommandDocument } from "../generated/graphql";
import { DeliveryLog } from "../kit/deliveries";
import { commandMarker, startTestGateway, waitForStatus, type TestGateway } from "../kit/gateway";
import type { GraphQLTestClient } from "../kit/graphql-client";
import { uniqueName } from "../kit/store";
import { waitUntil } from "../kit/wait";

const SETPOINT = "thermostat.setTemperature";

describe("superseding (CONTRACT §6.2)", () => {
  let kit: TestGateway;
  let admin: GraphQLTestClient;
  let operator: GraphQLTestClient;
  let valveId: string;
  before(async () => {
    kit = await startTestGateway();
    admin = await kit.as("admin");
    operator = await kit.as("operator");
    // The subscriptions' barrier: a valve that is online, so its marker commands do not linger.
    valveId = uniqueName("va-");
    await kit.device(valveId, "valve");
  });
  after(() => kit.stop());

  const stateOf = async (id: string) => {
    const { device } = await admin.data(DeviceStateDocument, { id });
    assert.ok(device);
    return device;
  };
  const send = async (deviceId: string, celsius: number) =>
    (await operator.data(SendCommandDocument, { input: { deviceId, type: SETPOINT, payload: { celsius } } })).sendCommand;

  it("an offline thermostat sent five setpoints runs only the last on reconnect; the four others are CANCELED with supersededBy, history and an event each", async () => {
    const thermostat = await kit.device(uniqueName("th-"), "thermostat", { connect: false });
    const deviceId = thermostat.deviceId;
    const deliveries = new DeliveryLog().watch(thermostat);
    const updates = await operator.subscribe(CommandUpdatedDocument, {});
    try {
      await updates.ready(commandMarker(operator, { deviceId: valveId, type: "valve.close" }));
      const sent = [];
      for (const celsius of [18, 19, 20, 21, 22]) sent.push(await send(deviceId, celsius));
      const last = sent.at(-1)!;

      // Superseded at send, while the device is offline: the sender's answer comes after it is stored.
      for (const [i, older] of sent.slice(0, -1).entries()) {
        const { command } = await operator.data(CommandDocument, { id: older.id });
        assert.ok(command);
        const newer: { id: string } = sent[i + 1]!;
        assert.equal(command.status, "CANCELED");
        assert.equal(command.supersededBy, newer.id);
        assert.equal(command.sentAt, null, "never handed to the broker");
        const entry = command.history.at(-1)!;
        assert.deepEqual([entry.status, entry.actor, entry.detail], ["CANCELED", "operator-user", `superseded by ${newer.id}`]);
        const event = await updates.waitFor((u) => u.commandUpdated.id === older.id && u.commandUpdated.status === "CANCELED");
        assert.equal(event.commandUpdated.supersededBy, newer.id);
      }
      const offline = await stateOf(deviceId);
      assert.deepEqual([offline.online, offline.desired, offline.inSync, offline.pendingCommands], [false, { setpoint: 22 }, false, 1]);

      await thermostat.start();
      const done = await waitForStatus(operator, last.id, "SUCCEEDED");
      assert.equal(done.supersededBy, null);
      await waitUntil("the device state synced", async () => (await stateOf(deviceId)).inSync);
      const synced = await stateOf(deviceId);
      assert.deepEqual([synced.reported, synced.desired, synced.pendingCommands], [{ setpoint: 22 }, {}, 0]);
      assert.deepEqual(
        deliveries.all.map((d) => d.id),
        [last.id],
        "the device received one setpoint, the last",
      );
      assert.deepEqual([...thermostat.executions.keys()], [last.id]);
      // Each of the four was announced CANCELED exactly once.
      const canceled = updates.values.filter((u) => u.commandUpdated.deviceId === deviceId && u.commandUpdated.status === "CANCELED");
      assert.deepEqual(canceled.map((u) => u.commandUpdated.id).sort(), sent.slice(0, -1).map((c) => c.id).sort());
    } finally {
      await updates.close();
    }
  });

  it("a setpoint already handed to the broker is never superseded; other types are not superseded", async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const deviceId = uniqueName("th-");
    // The device acknowledges at once and answers only when the test lets it.
    await kit.device(deviceId, "thermostat", {
      handler: async ({ payload }) => {
        await held;
        return { result: { setpoint: payload.celsius } };
      },
    });
    const first = await send(deviceId, 19);
    await waitForStatus(operator, first.id, "DELIVERED");
    const reboot = (await operator.data(SendCommandDocument, { input: { deviceId, type: "device.reboot" } })).sendCommand;
    const second = await send(deviceId, 23);
    const { command: untouched } = await operator.data(CommandDocument, { id: first.id });
    assert.equal(untouched?.status, "DELIVERED");
    assert.equal(untouched?.supersededBy, null);
    release();
    const [a, b, c] = await Promise.all([waitForStatus(operator, first.id, "SUCCEEDED"), waitForStatus(operator, second.id, "SUCCEEDED"), waitForStatus(operator, reboot.id, "SUCCEEDED")]);
    assert.deepEqual([a.supersededBy, b.supersededBy, c.supersededBy], [null, null, null]);
    // Both ran (the device let them go together): the state is the setpoint of the one that completed last.
    const last = [a, b].sort((x, y) => Date.parse(x.completedAt!) - Date.parse(y.completedAt!)).at(-1)!;
    const expected = { setpoint: (last.payload as { celsius: number }).celsius };
    await waitUntil("the last completed setpoint is reported", async () => isDeepStrictEqual((await stateOf(deviceId)).reported, expected), 10_000).catch(
      async () => assert.deepEqual((await stateOf(deviceId)).reported, expected),
    );
  });

  it("a setpoint scheduled for later neither supersedes the ones due now nor is superseded by them", async () => {
    const thermostat = await kit.device(uniqueName("th-"), "thermostat", { connect: false });
    const deviceId = thermostat.deviceId;
    const now = await send(deviceId, 20);
    const notBefore = new Date(Date.now() + 3_600_000).toISOString();
    const { sendCommand: tonight } = await operator.data(SendCommandDocument, { input: { deviceId, type: SETPOINT, payload: { celsius: 16 }, notBefore } });
    assert.equal(tonight.status, "QUEUED");
    assert.equal((await operator.data(CommandDocument, { id: now.id })).command?.status, "QUEUED", "the scheduled one does not replace what is due now");
    const later = await send(deviceId, 21);
    const { command: replaced } = await operator.data(CommandDocument, { id: now.id });
    assert.deepEqual([replaced?.status, replaced?.supersededBy], ["CANCELED", later.id]);
    const { command: scheduled } = await operator.data(CommandDocument, { id: tonight.id });
    assert.deepEqual([scheduled?.status, scheduled?.supersededBy], ["QUEUED", null]);
    // The setpoint that falls due last is the desired one.
    assert.deepEqual((await stateOf(deviceId)).desired, { setpoint: 16 });
  });
});
