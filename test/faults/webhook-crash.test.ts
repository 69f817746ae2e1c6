import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { MongoClient } from "mongodb";
import { verifySignature } from "../../src/alerts/webhooks/signature";
import type { FaultPoint } from "../../src/common/fault-points";
import { createSimulatedDevice } from "../../src/device-sdk";
import { CreateAlertWebhookDocument, RegisterDeviceDocument, SendCommandDocument } from "../generated/graphql";
import { dropBrokerSession, startGatewayProcess, type GatewayProcess } from "../kit/process";
import { processGatewaySetup } from "../kit/process-setup";
import { MOSQUITTO_URL, testStoreUri, uniqueName } from "../kit/store";
import { WebhookReceiver } from "../kit/webhook-receiver";

/**
 * Invariant: an alert reaches every subscribed webhook however the gateway dies on the way. A gateway
 * killed (SIGKILL) after writing an alert but before its deliveries, or after writing a delivery but
 * before attempting it, is restarted, and the receiver gets each delivery exactly once, signed.
 */
describe("gateway killed with alert deliveries pending", () => {
  let storeUri: string;
  before(async () => {
    storeUri = await testStoreUri();
  });

  const cases: Array<{ point: FaultPoint; what: string }> = [
    { point: "after-alert", what: "the alert stored, its deliveries not" },
    { point: "after-delivery-stored", what: "a delivery stored, not attempted" },
  ];

  for (const { point, what } of cases) {
    it(`${point} (${what}): restarted, the receiver gets the delivery once`, async () => {
      const { database, prefix, replicaId, tenant, env, admin } = await processGatewaySetup({ ALERT_WEBHOOK_ALLOW_HOSTS: "127.0.0.1" });
      const receiver = await WebhookReceiver.start();
      const deviceId = uniqueName("th-");
      const device = createSimulatedDevice({ deviceId, model: "thermostat", brokerUrl: MOSQUITTO_URL, topicPrefix: prefix, latencyMs: [0, 0], failRate: 1 });
      const processes: GatewayProcess[] = [];
      try {
        const first = await startGatewayProcess({ ...env, GATEWAY_FAULT_POINT: point });
        processes.push(first);
        const { createAlertWebhook: hook } = await admin.data(CreateAlertWebhookDocument, { url: receiver.url, kinds: ["FAILED"] });
        await admin.data(RegisterDeviceDocument, { input: { id: deviceId, site: "site-a", model: "thermostat" } });
        await device.start();
        await admin.data(SendCommandDocument, { input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 19 } } });
        // The device fails the command; the gateway dies on the way from the FAILED alert to the receiver.
        assert.equal(await first.exited, "SIGKILL", `the gateway stopped at ${point}:\n${first.output()}`);
        assert.equal(receiver.received.length, 0, "nothing was delivered before the crash");

        const second = await startGatewayProcess(env);
        processes.push(second);
        await receiver.waitFor(() => receiver.received.length >= 1, "the delivery after the restart", 30_000);

        const client = await MongoClient.connect(storeUri);
        try {
          const [alert] = await client.db(database).collection("alerts").find({ tenant }).toArray();
          assert.ok(alert, "the alert survived");
          const deliveryId = `${alert._id}:${hook.id}`;
          const deliveries = client.db(database).collection("alert_deliveries");
          const deadline = Date.now() + 15_000;
          while ((await deliveries.findOne({ _id: deliveryId as never }))?.status !== "DELIVERED") {
            assert.ok(Date.now() < deadline, "the delivery is DELIVERED");
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          assert.deepEqual(receiver.received.map((d) => d.deliveryId), [deliveryId], "exactly one request");
          assert.ok(verifySignature(hook.secret, receiver.received[0]!.body, receiver.received[0]!.signature));
          assert.equal((JSON.parse(receiver.received[0]!.body) as { id: string }).id, alert._id);
        } finally {
          await client.close();
        }
        assert.equal(await second.stop(), 0, "a clean shutdown with the delivery worker running");
      } finally {
        for (const gateway of processes) gateway.kill();
        await device.stop({ graceful: false });
        await receiver.close();
        await dropBrokerSession(MOSQUITTO_URL, `gateway-${replicaId}`);
      }
    });
  }
});
