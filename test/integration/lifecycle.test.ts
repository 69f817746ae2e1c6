import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import mqtt from "mqtt";
import {
  AlertRaisedDocument,
  AlertsDocument,
  CancelCommandDocument,
  CommandDocument,
  EscalateCommandDocument,
  RetryCommandDocument,
  SendCommandDocument,
} from "../generated/graphql";
import type { GraphQLTestClient } from "../kit/graphql-client";
import { startTestGateway, waitForStatus, type TestGateway } from "../kit/gateway";
import { MOSQUITTO_URL, uniqueName } from "../kit/store";
import { waitUntil } from "../kit/wait";

/** Timeouts, expiry, alerts, retry, escalation and cancellation (CONTRACT §4) against Mosquitto. */
describe("command lifecycle after sending", () => {
  let kit: TestGateway;
  let operator: GraphQLTestClient;
  let observer: mqtt.MqttClient;
  const alertsOnTopic: Array<Record<string, unknown>> = [];

  before(async () => {
    kit = await startTestGateway({ broker: "mosquitto" });
    operator = await kit.as("operator");
    observer = await mqtt.connectAsync(MOSQUITTO_URL, { clientId: uniqueName("observer-") });
    await observer.subscribeAsync(`${kit.topicPrefix}/alerts`, { qos: 1 });
    observer.on("message", (_topic, payload) => alertsOnTopic.push(JSON.parse(payload.toString())));
  });
  after(async () => {
    await observer.endAsync();
    await kit.stop();
  });

  const send = async (deviceId: string, extra: Record<string, unknown> = {}) =>
    (await operator.data(SendCommandDocument, { input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 20 }, ...extra } }))
      .sendCommand;

  const alertsOf = async (commandId: string) =>
    (await operator.data(AlertsDocument, { first: 200 })).alerts.edges.map((e) => e.node).filter((a) => a.commandId === commandId);

  it("times out without a final reply, raises one TIMED_OUT alert everywhere, and a late reply is applied and resolves it", async () => {
    const deviceId = uniqueName("th-");
    await kit.device(deviceId, "thermostat", { dropRate: 1 });
    const alerts = await operator.subscribe(AlertRaisedDocument);
    // Marker: each command to a device that fails everything raises a FAILED alert at once.
    const failing = uniqueName("th-fail-");
    await kit.device(failing, "thermostat", { failRate: 1 });
    await alerts.ready(async () => {
      const marker = await send(failing);
      return (a) => a.alertRaised.commandId === marker.id;
    });
    const command = await send(deviceId, { timeoutSeconds: 1 });

    const timedOut = await waitForStatus(operator, command.id, "TIMED_OUT");
    assert.equal(timedOut.history.at(-1)?.actor, "gateway");
    assert.deepEqual(timedOut.allowedActions, ["RETRY", "ESCALATE"]);
    const raised = await alerts.waitFor((a) => a.alertRaised.commandId === command.id);
    assert.equal(raised.alertRaised.kind, "TIMED_OUT");
    assert.equal(raised.alertRaised.level, 0);
    // Barrier: a second timeout on the same device, alerted after it, proves later deadline rounds ran; still exactly one alert.
    const later = await send(deviceId, { timeoutSeconds: 1 });
    await alerts.waitFor((a) => a.alertRaised.commandId === later.id);
    await waitUntil("the later alert on the alerts topic", () => alertsOnTopic.some((a) => a.commandId === later.id));
    await alerts.close();
    assert.equal(alerts.values.filter((a) => a.alertRaised.commandId === command.id).length, 1);
    assert.equal((await alertsOf(command.id)).length, 1);
    assert.equal(alertsOnTopic.filter((a) => a.commandId === command.id).length, 1);

    // The device did act after all: its late reply counts.
    const device = await mqtt.connectAsync(MOSQUITTO_URL, { clientId: uniqueName("late-") });
    await device.publishAsync(
      `${kit.topicPrefix}/devices/${deviceId}/replies`,
      JSON.stringify({ id: command.id, status: "SUCCEEDED", result: { celsius: 20 } }),
      { qos: 1 },
    );
    await device.endAsync();
    const succeeded = await waitForStatus(operator, command.id, "SUCCEEDED");
    assert.deepEqual(succeeded.result, { celsius: 20 });
    assert.equal(succeeded.history.at(-1)?.detail, "late reply after timeout");
    // The alert is resolved after the transition is stored: wait for it.
    await waitUntil("the TIMED_OUT alert resolved", async () => Boolean((await alertsOf(command.id))[0]?.resolvedAt));
    assert.equal((await alertsOf(command.id)).length, 1);
  });

  it("a command not sent before expiresAt expires with an EXPIRED alert and is never sent", async () => {
    const deviceId = uniqueName("th-");
    const device = await kit.device(deviceId, "thermostat", { connect: false });
    const command = await send(deviceId, { expiresInSeconds: 1 });
    const expired = await waitForStatus(operator, command.id, "EXPIRED");
    assert.equal(expired.sentAt, null);
    await waitUntil("the EXPIRED alert", async () => (await alertsOf(command.id)).length > 0);
    assert.deepEqual(
      (await alertsOf(command.id)).map((a) => a.kind),
      ["EXPIRED"],
    );
    await device.start();
    // Barrier: a command sent now is delivered after anything queued before it.
    const fresh = await send(deviceId);
    await waitForStatus(operator, fresh.id, "SUCCEEDED");
    assert.equal(device.received, 1, "only the fresh command was delivered");
  });

  it("a FAILED command raises a FAILED alert; retry sends it again as attempt 2 with the same id", async () => {
    const deviceId = uniqueName("th-");
    let calls = 0;
    const device = await kit.device(deviceId, "thermostat", {
      handler: () => (++calls === 1 ? { error: { code: "SENSOR_FAULT", message: "sensor not responding" } } : { result: { ok: true } }),
    });
    const command = await send(deviceId);
    const failed = await waitForStatus(operator, command.id, "FAILED");
    assert.deepEqual(failed.error, { code: "SENSOR_FAULT", message: "sensor not responding" });
    await waitUntil("the FAILED alert", async () => (await alertsOf(command.id)).length > 0);
    assert.deepEqual(
      (await alertsOf(command.id)).map((a) => [a.kind, a.resolvedAt]),
      [["FAILED", null]],
    );

    const { retryCommand } = await operator.data(RetryCommandDocument, { id: command.id });
    assert.equal(retryCommand.id, command.id);
    assert.equal(retryCommand.attempt, 2);
    assert.equal(retryCommand.status, "QUEUED");
    assert.equal(retryCommand.error, null);
    const succeeded = await waitForStatus(operator, command.id, "SUCCEEDED");
    assert.equal(succeeded.attempt, 2);
    assert.deepEqual(
      succeeded.history.map((h) => h.status),
      ["QUEUED", "SENT", "DELIVERED", "FAILED", "QUEUED", "SENT", "DELIVERED", "SUCCEEDED"],
    );
    assert.equal(device.executions.get(command.id), 2);
    await waitUntil("success resolves the FAILED alert", async () => Boolean((await alertsOf(command.id))[0]?.resolvedAt));

    assert.equal(await operator.errorCode(RetryCommandDocument, { id: command.id }), "CONFLICT");
  });

  it("escalation raises the level and an ESCALATED alert each time, only from FAILED, TIMED_OUT or EXPIRED", async () => {
    const deviceId = uniqueName("th-");
    await kit.device(deviceId, "thermostat", { failRate: 1 });
    const command = await send(deviceId);
    await waitForStatus(operator, command.id, "FAILED");
    const first = await operator.data(EscalateCommandDocument, { id: command.id, note: "call the site" });
    assert.deepEqual(
      [first.escalateCommand.escalation?.level, first.escalateCommand.escalation?.note, first.escalateCommand.escalation?.by],
      [1, "call the site", "operator-user"],
    );
    const second = await operator.data(EscalateCommandDocument, { id: command.id });
    assert.equal(second.escalateCommand.escalation?.level, 2);
    assert.equal(second.escalateCommand.status, "FAILED");
    await waitUntil("two ESCALATED alerts", async () => (await alertsOf(command.id)).filter((a) => a.kind === "ESCALATED").length === 2);
    const escalated = (await alertsOf(command.id)).filter((a) => a.kind === "ESCALATED").map((a) => a.level);
    assert.deepEqual(escalated.sort(), [1, 2]);

    // A command still waiting (its device is offline) cannot be escalated.
    const offline = uniqueName("th-");
    await kit.device(offline, "thermostat", { connect: false });
    const waiting = await send(offline);
    assert.equal(await operator.errorCode(EscalateCommandDocument, { id: waiting.id }), "CONFLICT");
  });

  it("cancel works only while QUEUED and not yet taken for sending", async () => {
    const deviceId = uniqueName("th-");
    const device = await kit.device(deviceId, "thermostat", { connect: false });
    const command = await send(deviceId);
    const { cancelCommand } = await operator.data(CancelCommandDocument, { id: command.id });
    assert.equal(cancelCommand.status, "CANCELED");
    assert.equal(cancelCommand.history.at(-1)?.actor, "operator-user");
    assert.equal(await operator.errorCode(CancelCommandDocument, { id: command.id }), "CONFLICT");
    await device.start();
    const other = await send(deviceId);
    await waitForStatus(operator, other.id, "SUCCEEDED");
    assert.equal(device.executions.has(command.id), false, "a canceled command never reaches the device");
    assert.equal(await operator.errorCode(CancelCommandDocument, { id: other.id }), "CONFLICT");
  });

  it("retry, escalate and cancel need the right role and tenant", async () => {
    const deviceId = uniqueName("th-");
    await kit.device(deviceId, "thermostat", { connect: false });
    const command = await send(deviceId);
    const viewer = await kit.as("viewer");
    assert.deepEqual(command.allowedActions, ["CANCEL"]);
    assert.deepEqual((await viewer.data(CommandDocument, { id: command.id })).command?.allowedActions, [], "a viewer is offered nothing");
    assert.equal(await viewer.errorCode(CancelCommandDocument, { id: command.id }), "FORBIDDEN");
    const stranger = await kit.as("admin", { tenant: "someone-else" });
    assert.equal(await stranger.errorCode(CancelCommandDocument, { id: command.id }), "NOT_FOUND");
    assert.equal(await stranger.errorCode(RetryCommandDocument, { id: command.id }), "NOT_FOUND");
    const { command: after } = await operator.data(CommandDocument, { id: command.id });
    assert.equal(after?.status, "QUEUED");
  });
});
