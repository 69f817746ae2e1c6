import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import mqtt from "mqtt";
import { CommandDocument, SendCommandDocument } from "../generated/graphql";
import type { GraphQLTestClient } from "../kit/graphql-client";
import { startTestGateway, waitForStatus, type TestGateway } from "../kit/gateway";
import { readMetric, waitForMetric } from "../kit/metrics";
import { MOSQUITTO_URL, uniqueName } from "../kit/store";

const REJECTED = "gateway_replies_rejected_total";

/**
 * Invariant: a reply that is duplicated, reordered, stale, malformed, for an unknown command or from
 * the wrong device never changes a command; each one is counted by reason in /metrics.
 */
describe("replies that must change nothing", () => {
  let kit: TestGateway;
  let operator: GraphQLTestClient;
  let forger: mqtt.MqttClient;
  let deviceA: string;
  let deviceB: string;

  before(async () => {
    kit = await startTestGateway({ broker: "mosquitto" });
    operator = await kit.as("operator");
    deviceA = uniqueName("th-");
    deviceB = uniqueName("th-");
    // Devices that take commands and never answer: every reply in this test is forged.
    await kit.device(deviceA, "thermostat", { dropRate: 1 });
    await kit.device(deviceB, "thermostat", { dropRate: 1 });
    forger = await mqtt.connectAsync(MOSQUITTO_URL, { clientId: uniqueName("forger-") });
  });
  after(async () => {
    await forger.endAsync();
    await kit.stop();
  });

  const reply = (deviceId: string, body: unknown) =>
    forger.publishAsync(`${kit.topicPrefix}/devices/${deviceId}/replies`, typeof body === "string" ? body : JSON.stringify(body), { qos: 1 });

  async function sentCommand(deviceId: string) {
    const { sendCommand } = await operator.data(SendCommandDocument, {
      input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 21 } },
    });
    return waitForStatus(operator, sendCommand.id, "SENT");
  }

  /** Publishes, waits until the reason's counter moved by `count`, and returns the command as stored. */
  async function rejected(reason: string, count: number, publish: () => Promise<unknown>, commandId?: string) {
    const before = await readMetric(kit.url, REJECTED, { reason });
    await publish();
    await waitForMetric(kit.url, REJECTED, before + count, { reason });
    return commandId ? (await operator.data(CommandDocument, { id: commandId })).command : undefined;
  }

  it("unknown command id: unknown_command", async () => {
    await rejected("unknown_command", 1, () => reply(deviceA, { id: "00000000-0000-4000-8000-000000000000", status: "SUCCEEDED", result: {} }));
  });

  it("a reply on another device's topic: wrong_device, the command untouched", async () => {
    const command = await sentCommand(deviceA);
    const after = await rejected("wrong_device", 1, () => reply(deviceB, { id: command.id, status: "SUCCEEDED", result: { hacked: true } }), command.id);
    assert.equal(after?.status, "SENT");
    assert.equal(after?.result, null);
  });

  it("malformed replies: malformed, one count each", async () => {
    const command = await sentCommand(deviceA);
    const after = await rejected(
      "malformed",
      4,
      async () => {
        await reply(deviceA, "not json at all");
        await reply(deviceA, { id: command.id, status: "DONE" });
        await reply(deviceA, { id: command.id, status: "FAILED" }); // FAILED without an error
        await reply(deviceA, [command.id, "SUCCEEDED"]);
      },
      command.id,
    );
    assert.equal(after?.status, "SENT");
  });

  it("an oversized reply: oversized", async () => {
    const command = await sentCommand(deviceA);
    const after = await rejected(
      "oversized",
      1,
      () => reply(deviceA, { id: command.id, status: "SUCCEEDED", result: { blob: "x".repeat(70_000) } }),
      command.id,
    );
    assert.equal(after?.status, "SENT");
  });

  it("a reply for another attempt: stale_attempt", async () => {
    const command = await sentCommand(deviceA);
    const after = await rejected("stale_attempt", 1, () => reply(deviceA, { id: command.id, status: "SUCCEEDED", result: {}, attempt: 7 }), command.id);
    assert.equal(after?.status, "SENT");
  });

  it("reordered (final before DELIVERED) and duplicated replies: the first final reply stands", async () => {
    const command = await sentCommand(deviceA);
    await reply(deviceA, { id: command.id, status: "SUCCEEDED", result: { celsius: 21 } });
    await waitForStatus(operator, command.id, "SUCCEEDED");
    const after = await rejected(
      "not_allowed_in_state",
      2,
      async () => {
        await reply(deviceA, { id: command.id, status: "DELIVERED" });
        await reply(deviceA, { id: command.id, status: "FAILED", error: { code: "LATE" } });
      },
      command.id,
    );
    assert.equal(after?.status, "SUCCEEDED");
    assert.deepEqual(after?.result, { celsius: 21 });
    assert.equal(after?.error, null);
    // The final reply implies the delivery the late DELIVERED reply would have recorded.
    assert.deepEqual(
      after?.history.map((h) => [h.status, h.detail ?? null]),
      [
        ["QUEUED", null],
        ["SENT", null],
        ["DELIVERED", "implied by the final reply"],
        ["SUCCEEDED", null],
      ],
    );
  });
});
