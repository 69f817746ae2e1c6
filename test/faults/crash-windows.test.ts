import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { MongoClient } from "mongodb";
import { signToken } from "../../src/auth/jwt";
import { DeviceClient, MemoryExecutionStore } from "../../src/device-sdk";
import type { FaultPoint } from "../../src/common/fault-points";
import { CommandsDocument, RegisterDeviceDocument, SendCommandDocument } from "../generated/graphql";
import { DeliveryLog } from "../kit/deliveries";
import { TEST_JWT_SECRET, waitForStatus } from "../kit/gateway";
import { GraphQLTestClient } from "../kit/graphql-client";
import { dropBrokerSession, startGatewayProcess, type GatewayProcess } from "../kit/process";
import { MOSQUITTO_URL, testStoreUri, uniqueName } from "../kit/store";
import { waitUntil, within } from "../kit/wait";

/** Each case starts two gateway processes and waits for a deadline at most: its own budget, well inside the file's. */
const CASE_BUDGET_MS = 90_000;

/**
 * Invariant: a gateway killed (SIGKILL) at any point of a command's path loses nothing and executes
 * nothing twice. After a restart the command reaches the state that tells the truth, the device has
 * run it at most once and received it with the same attempt every time, and a timeout has exactly
 * one alert. The cases are independent (own database, prefix and replica id) and run two at a time.
 */
describe("gateway killed at each crash window", { concurrency: 2 }, () => {
  let storeUri: string;
  before(async () => {
    storeUri = await testStoreUri();
  });

  const cases: Array<{ point: FaultPoint; expect: "SUCCEEDED" | "TIMED_OUT" }> = [
    { point: "after-store", expect: "SUCCEEDED" },
    { point: "after-claim", expect: "SUCCEEDED" },
    { point: "after-publish", expect: "SUCCEEDED" },
    { point: "after-reply", expect: "SUCCEEDED" },
    { point: "after-timeout", expect: "TIMED_OUT" },
  ];

  for (const { point, expect } of cases) {
    const title = `${point}: restarted, the command ends ${expect}, executed ${expect === "SUCCEEDED" ? "once" : "never and delivered once"}`;
    it(title, { timeout: CASE_BUDGET_MS }, async () => {
      const database = uniqueName("fault_");
      const prefix = uniqueName("f");
      const replicaId = uniqueName("r");
      const tenant = uniqueName("tenant-");
      const env = {
        MONGODB_URI: storeUri,
        MONGODB_DB: database,
        MQTT_URL: MOSQUITTO_URL,
        MQTT_TOPIC_PREFIX: prefix,
        JWT_SECRET: TEST_JWT_SECRET,
        REPLICA_ID: replicaId,
        DEMO: "0",
      };
      const token = await signToken(TEST_JWT_SECRET, { sub: "admin-user", tenant, roles: ["admin"] });
      const deviceId = uniqueName("th-");
      const timesOut = expect === "TIMED_OUT";
      // after-timeout: the first command is swallowed (no reply), so it times out; later ones are answered.
      let swallowed: string | undefined;
      // The device remembers what it executed across everything that happens to the gateway.
      const device = new DeviceClient({
        deviceId,
        brokerUrl: MOSQUITTO_URL,
        topicPrefix: prefix,
        store: new MemoryExecutionStore(),
        handler: async ({ payload }) => {
          await new Promise((resolve) => setTimeout(resolve, 50));
          return { result: { setpoint: payload.celsius } };
        },
        drop: (command) => timesOut && (swallowed ??= command.id) === command.id,
      });
      const deliveries = new DeliveryLog().watch(device);

      const running: GatewayProcess[] = [];
      try {
        const first = await startGatewayProcess({ ...env, GATEWAY_FAULT_POINT: point });
        running.push(first);
        const admin = new GraphQLTestClient(first.url, { token });
        await admin.data(RegisterDeviceDocument, { input: { id: deviceId, site: "site-a", model: "thermostat" } });
        await device.start();
        // The request dies with the process at after-store (the command is found by listing); otherwise
        // it may or may not be answered first, but never refused.
        const sent = admin
          .request(SendCommandDocument, {
            input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 19 }, timeoutSeconds: timesOut ? 1 : 30 },
          })
          .then(
            (response) => ({ response }),
            (error: Error) => ({ lost: error.message }),
          );
        const exit = await within(`the gateway reaching ${point}`, first.exited, 30_000).catch((error: Error) => {
          throw new Error(`${error.message}\n${first.output()}`);
        });
        assert.equal(exit, "SIGKILL", `the gateway stopped at ${point}:\n${first.output()}`);
        const answer = await sent;
        if ("response" in answer) {
          assert.equal(answer.response.errors, undefined, `sendCommand was refused: ${JSON.stringify(answer.response.errors)}`);
          assert.equal(answer.response.data?.sendCommand.status, "QUEUED");
        } else {
          assert.notEqual(point, "after-timeout", `the send had to be answered before the timeout: ${answer.lost}`);
        }
        if (point === "after-store") assert.ok("lost" in answer, "the gateway died before it could answer");

        const second = await startGatewayProcess(env);
        running.push(second);
        const again = new GraphQLTestClient(second.url, { token });
        const { commands } = await again.data(CommandsDocument, { filter: { deviceId } });
        assert.equal(commands.edges.length, 1, "the command survived");
        const id = commands.edges[0]!.node.id;
        if ("response" in answer) assert.equal(answer.response.data?.sendCommand.id, id);
        const final = await waitForStatus(again, id, expect, 30_000);
        if (!timesOut) assert.deepEqual(final.result, { setpoint: 19 });

        // Barrier: a command sent now reaches the device after anything the restart sent it again.
        const { sendCommand: marker } = await again.data(SendCommandDocument, {
          input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 20 } },
        });
        await waitForStatus(again, marker.id, "SUCCEEDED", 30_000);

        assert.equal(device.executions.get(id) ?? 0, timesOut ? 0 : 1);
        const received = deliveries.of(id);
        assert.deepEqual(deliveries.unexplainedAttempts(), [], "no retry was made: every delivery is attempt 1");
        // Once, plus at most one resend of what the killed gateway had sent without an acknowledgement.
        if (timesOut) assert.equal(received.length, 1, `delivered once: ${JSON.stringify(received)}`);
        else assert.ok(received.length >= 1 && received.length <= 2, `delivered once or twice: ${JSON.stringify(received)}`);

        const mongo = await MongoClient.connect(storeUri);
        try {
          const alerts = mongo.db(database).collection("alerts");
          // The restarted gateway's sweeper writes the alert the killed one had decided on.
          if (timesOut) await waitUntil(`the TIMED_OUT alert of ${id}`, async () => (await alerts.countDocuments({ commandId: id })) > 0, 30_000);
          // The marker's SUCCEEDED came after the restart's safety net had its chance; still exactly one.
          assert.deepEqual(
            (await alerts.find({ commandId: id }).toArray()).map((a) => a.kind),
            timesOut ? ["TIMED_OUT"] : [],
          );
        } finally {
          await mongo.close();
        }
      } finally {
        await Promise.all(running.map((gateway) => gateway.kill()));
        await device.stop({ graceful: false });
        await dropBrokerSession(MOSQUITTO_URL, `gateway-${replicaId}`);
      }
    });
  }
});
