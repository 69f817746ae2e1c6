import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { MongoClient } from "mongodb";
import { createSimulatedDevice, DeviceClient, MemoryExecutionStore } from "../../src/device-sdk";
import type { FaultPoint } from "../../src/common/fault-points";
import { CommandsDocument, RegisterDeviceDocument, SendCommandDocument } from "../generated/graphql";
import { waitForStatus } from "../kit/gateway";
import { dropBrokerSession, startGatewayProcess } from "../kit/process";
import { processGatewaySetup } from "../kit/process-setup";
import { MOSQUITTO_URL, testStoreUri, uniqueName } from "../kit/store";

/**
 * Invariant: a gateway killed (SIGKILL) at any point of a command's path loses nothing and executes
 * nothing twice. After a restart the command reaches the state that tells the truth, the device has
 * run it at most once, and a timeout has exactly one alert.
 */
describe("gateway killed at each crash window", () => {
  let storeUri: string;
  before(async () => {
    storeUri = await testStoreUri();
  });

  const cases: Array<{ point: FaultPoint; drop?: boolean; expect: "SUCCEEDED" | "TIMED_OUT" }> = [
    { point: "after-store", expect: "SUCCEEDED" },
    { point: "after-claim", expect: "SUCCEEDED" },
    { point: "after-publish", expect: "SUCCEEDED" },
    { point: "after-reply", expect: "SUCCEEDED" },
    { point: "after-timeout", drop: true, expect: "TIMED_OUT" },
  ];

  for (const { point, drop, expect } of cases) {
    it(`${point}: restarted, the command ends ${expect}, executed ${expect === "SUCCEEDED" ? "once" : "never"}`, async () => {
      const { database, prefix, replicaId, port, env, admin } = await processGatewaySetup();
      const deviceId = uniqueName("th-");
      // The device remembers what it executed across everything that happens to the gateway.
      const device: DeviceClient = createSimulatedDevice({
        deviceId,
        model: "thermostat",
        brokerUrl: MOSQUITTO_URL,
        topicPrefix: prefix,
        store: new MemoryExecutionStore(),
        latencyMs: [50, 50],
        dropRate: drop ? 1 : 0,
      });

      const first = await startGatewayProcess({ ...env, GATEWAY_FAULT_POINT: point }, port);
      try {
        await admin.data(RegisterDeviceDocument, { input: { id: deviceId, site: "site-a", model: "thermostat" } });
        await device.start();
        // The request itself may die with the process (after-store): the command is found by listing.
        await admin
          .request(SendCommandDocument, {
            input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 19 }, timeoutSeconds: drop ? 1 : 30 },
          })
          .catch(() => undefined);
        assert.equal(await first.exited, "SIGKILL", `the gateway stopped at ${point}:\n${first.output()}`);

        const second = await startGatewayProcess(env, port);
        try {
          const { commands } = await admin.data(CommandsDocument, { filter: { deviceId } });
          assert.equal(commands.edges.length, 1, "the command survived");
          const id = commands.edges[0]!.node.id;
          const final = await waitForStatus(admin, id, expect, 15_000);
          assert.equal(device.executions.get(id) ?? 0, expect === "SUCCEEDED" ? 1 : 0);
          if (expect === "SUCCEEDED") assert.deepEqual(final.result, { celsius: 19, setpoint: 19 });

          const client = await MongoClient.connect(storeUri);
          try {
            const alerts = client.db(database).collection("alerts");
            if (expect === "TIMED_OUT") {
              // The restarted gateway's sweeper writes the alert the killed one had decided on.
              const deadline = Date.now() + 5_000;
              while ((await alerts.countDocuments({ commandId: id })) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
              await new Promise((r) => setTimeout(r, 300)); // a few more sweeps: still exactly one
            }
            assert.deepEqual(
              (await alerts.find({ commandId: id }).toArray()).map((a) => a.kind),
              expect === "TIMED_OUT" ? ["TIMED_OUT"] : [],
            );
          } finally {
            await client.close();
          }
        } finally {
          await second.stop();
        }
      } finally {
        first.child.kill("SIGKILL");
        await device.stop({ graceful: false });
        await dropBrokerSession(MOSQUITTO_URL, `gateway-${replicaId}`);
      }
    });
  }
});

