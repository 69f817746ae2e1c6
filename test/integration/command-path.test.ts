import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CommandDocument, CommandsDocument, CommandUpdatedDocument, SendCommandDocument } from "../generated/graphql";
import { DeliveryLog } from "../kit/deliveries";
import { commandMarker, startTestGateway, waitForStatus, type TestGateway } from "../kit/gateway";
import { uniqueName } from "../kit/store";

for (const broker of ["aedes", "mosquitto"] as const) {
  describe(`command path over ${broker}`, () => {
    let kit: TestGateway;
    before(async () => {
      kit = await startTestGateway({ broker });
    });
    after(() => kit.stop());

    it("operator sends, device acknowledges and succeeds, a subscriber sees every transition", async () => {
      const deviceId = uniqueName("th-");
      const device = await kit.device(deviceId, "thermostat");
      const operator = await kit.as("operator");
      const deliveries = new DeliveryLog().watch(device);
      const updates = await operator.subscribe(CommandUpdatedDocument, { deviceId });
      await updates.ready(commandMarker(operator, { deviceId, type: "thermostat.setTemperature", payload: { celsius: 20 } }));

      const { sendCommand } = await operator.data(SendCommandDocument, {
        input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 22.5 } },
      });
      assert.equal(sendCommand.status === "QUEUED" || sendCommand.status === "SENT", true);
      assert.equal(sendCommand.source, "OPERATOR");
      assert.equal(sendCommand.issuedBy, "operator-user");
      assert.equal(sendCommand.attempt, 1);
      assert.equal(sendCommand.timeoutSeconds, 30);

      const done = await updates.waitFor((u) => u.commandUpdated.id === sendCommand.id && u.commandUpdated.status === "SUCCEEDED");
      assert.deepEqual(done.commandUpdated.result, { celsius: 22.5, setpoint: 22.5 });
      const seen = updates.values.filter((u) => u.commandUpdated.id === sendCommand.id).map((u) => u.commandUpdated.status);
      assert.deepEqual([...new Set(seen)], ["QUEUED", "SENT", "DELIVERED", "SUCCEEDED"]);
      await updates.close();

      const { command } = await operator.data(CommandDocument, { id: sendCommand.id });
      assert.ok(command);
      assert.deepEqual(
        command.history.map((h) => h.status),
        ["QUEUED", "SENT", "DELIVERED", "SUCCEEDED"],
      );
      assert.equal(command.history[2]!.actor, `device:${deviceId}`);
      assert.ok(command.sentAt && command.deliveredAt && command.completedAt && command.deadline);
      assert.equal(new Date(command.deadline).getTime(), new Date(command.sentAt).getTime() + 30_000);
      assert.equal(command.device?.id, deviceId);
      assert.equal(device.executions.get(sendCommand.id), 1);
      // Nothing went wrong on the way, so the gateway published it exactly once.
      assert.deepEqual(deliveries.of(sendCommand.id).map((d) => d.attempt), [1]);
    });

    it("a device failure ends FAILED with the device's error code", async () => {
      const deviceId = uniqueName("va-");
      await kit.device(deviceId, "valve", { failRate: 1 });
      const operator = await kit.as("operator");
      const updates = await operator.subscribe(CommandUpdatedDocument, { deviceId });
      await updates.ready(commandMarker(operator, { deviceId, type: "valve.open", payload: { seconds: 1 } }));
      const { sendCommand } = await operator.data(SendCommandDocument, { input: { deviceId, type: "valve.open", payload: { seconds: 5 } } });
      const failed = await updates.waitFor((u) => u.commandUpdated.id === sendCommand.id && u.commandUpdated.status === "FAILED");
      assert.equal(failed.commandUpdated.error?.code, "SIMULATED_FAILURE");
      assert.equal(failed.commandUpdated.result, null);
      await updates.close();
    });

    it("commands for an offline device wait QUEUED and go out oldest first when it comes online", async () => {
      const deviceId = uniqueName("th-");
      const device = await kit.device(deviceId, "thermostat", { connect: false });
      const operator = await kit.as("operator");
      const sent: string[] = [];
      // Not setpoints: a newer setpoint supersedes the ones still queued (superseding.test.ts).
      for (const input of [{ type: "device.reboot" }, { type: "thermostat.setTemperature", payload: { celsius: 18 } }, { type: "device.reboot" }]) {
        const { sendCommand } = await operator.data(SendCommandDocument, { input: { deviceId, ...input } });
        sent.push(sendCommand.id);
      }
      const waiting = await operator.data(CommandsDocument, { filter: { deviceId } });
      assert.deepEqual(
        waiting.commands.edges.map((e) => e.node.status),
        ["QUEUED", "QUEUED", "QUEUED"],
      );

      const order: string[] = [];
      device.on("command", (command) => order.push(command.id));
      const updates = await operator.subscribe(CommandUpdatedDocument, { deviceId });
      // Markers queue behind the three; each is a QUEUED event at once.
      await updates.ready(commandMarker(operator, { deviceId, type: "device.reboot" }));
      const online = Date.now();
      await device.start();
      for (const id of sent) await updates.waitFor((u) => u.commandUpdated.id === id && u.commandUpdated.status === "SUCCEEDED");
      assert.deepEqual(order.slice(0, sent.length), sent);
      // Nothing was sent while the device was away: every SENT is from after it came online.
      for (const id of sent) {
        const { command } = await operator.data(CommandDocument, { id });
        const sentAt = command!.history.find((h) => h.status === "SENT")!.at;
        assert.ok(new Date(sentAt).getTime() >= online - 5, `${id} SENT at ${sentAt}, before the device came online`);
      }
      await updates.close();
    });

    it("the same idempotency key and input give the same command; other input is a CONFLICT", async () => {
      const deviceId = uniqueName("th-");
      const device = await kit.device(deviceId, "thermostat");
      const operator = await kit.as("operator");
      const input = { deviceId, type: "thermostat.setTemperature", payload: { celsius: 21 }, idempotencyKey: "morning-setpoint" };
      const first = await operator.data(SendCommandDocument, { input });
      const second = await operator.data(SendCommandDocument, { input });
      assert.equal(second.sendCommand.id, first.sendCommand.id);
      const other = await operator.request(SendCommandDocument, { input: { ...input, payload: { celsius: 23 } } });
      assert.equal(other.errors?.[0]?.extensions?.code, "CONFLICT");

      // A different caller with the same key gets its own command.
      const admin = await kit.as("admin");
      const third = await admin.data(SendCommandDocument, { input });
      assert.notEqual(third.sendCommand.id, first.sendCommand.id);

      const all = await operator.data(CommandsDocument, { filter: { deviceId } });
      assert.equal(all.commands.edges.length, 2);
      await waitForStatus(operator, first.sendCommand.id, "SUCCEEDED");
      assert.equal(device.executions.get(first.sendCommand.id), 1);
    });
  });
}
