import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { DeviceClient } from "../../src/device-sdk";
import { SendCommandDocument } from "../generated/graphql";
import { DeliveryLog } from "../kit/deliveries";
import type { GraphQLTestClient } from "../kit/graphql-client";
import { retryUnlessCompleted, startTestGateway, waitForAnyStatus, waitForStatus, type TestGateway } from "../kit/gateway";
import { startPrivateMosquitto, type PrivateMosquitto } from "../kit/mosquitto";
import { uniqueName } from "../kit/store";

/**
 * Invariant: the broker going away mid-traffic loses no command and runs none twice; /readyz says
 * 503 while it is gone and 200 once the gateway has reconnected by itself. A final reply that the
 * restarted broker could not pass on (nobody was subscribed yet) ends its command TIMED_OUT, the
 * truthful state, and a retry is answered from the device's memory without running it again.
 */
describe("Mosquitto restarted mid-traffic", () => {
  const dir = mkdtempSync(join(tmpdir(), "broker-restart-"));
  let broker: PrivateMosquitto;
  let kit: TestGateway;
  let operator: GraphQLTestClient;
  const devices: DeviceClient[] = [];
  const deliveries = new DeliveryLog();

  before(async () => {
    broker = await startPrivateMosquitto(dir);
    kit = await startTestGateway({ env: { MQTT_URL: broker.url, DISPATCH_LEASE_MS: "3000" } });
    operator = await kit.as("operator");
    for (let i = 0; i < 5; i++) devices.push(await kit.device(uniqueName(`th${i}-`), "thermostat", { latencyMs: [20, 120] }));
    for (const device of devices) deliveries.watch(device);
  });
  after(async () => {
    await kit.stop();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const ready = async () => (await fetch(`${kit.url}/readyz`)).status;
  async function waitForReadiness(status: number) {
    const deadline = Date.now() + 15_000;
    while ((await ready()) !== status) {
      if (Date.now() > deadline) throw new Error(`/readyz never became ${status}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it("every command ends SUCCEEDED (directly, or after a retry of a timeout) and is executed once, or is superseded while queued and never sent", async () => {
    const ids: string[] = [];
    const send = async (n: number) => {
      const device = devices[n % devices.length]!;
      const { sendCommand } = await operator.data(SendCommandDocument, {
        input: { deviceId: device.deviceId, type: "thermostat.setTemperature", payload: { celsius: 10 + (n % 20) }, timeoutSeconds: 5 },
      });
      ids.push(sendCommand.id);
    };
    for (let n = 0; n < 15; n++) await send(n);

    assert.equal(await ready(), 200);
    await broker.stop();
    await waitForReadiness(503);
    // Commands keep being accepted while the broker is gone: they wait QUEUED in the store.
    for (let n = 15; n < 25; n++) await send(n);
    broker = await startPrivateMosquitto(dir, { port: broker.port });
    await waitForReadiness(200);
    for (let n = 25; n < 40; n++) await send(n);

    // All at once under one deadline: a timeout is retried (unless a late reply completed it first).
    const retried = new Set<string>();
    // Setpoints queued for a device while the broker is away supersede each other: the older end CANCELED.
    const superseded = new Set<string>();
    await Promise.all(
      ids.map(async (id) => {
        const settled = await waitForAnyStatus(operator, id, ["SUCCEEDED", "TIMED_OUT", "CANCELED"], 45_000);
        if (settled.status === "CANCELED") {
          assert.ok(settled.supersededBy, `${id} CANCELED only by superseding`);
          assert.equal(settled.sentAt, null, `${id} was superseded after it was sent`);
          superseded.add(id);
          return;
        }
        if (settled.status === "TIMED_OUT" && (await retryUnlessCompleted(operator, id))) {
          retried.add(id);
          deliveries.retried(id);
        }
        await waitForStatus(operator, id, "SUCCEEDED", 45_000);
      }),
    );
    console.log(`# ${ids.length - superseded.size} commands SUCCEEDED, ${retried.size} of them after a retry of a timeout; ${superseded.size} superseded`);
    for (const id of ids) {
      const runs = devices.reduce((sum, device) => sum + (device.executions.get(id) ?? 0), 0);
      assert.equal(runs, superseded.has(id) ? 0 : 1, `command ${id} ran ${runs} times`);
    }
    // What the gateway sent: a higher attempt only after a retry; every command got to its device.
    assert.deepEqual(deliveries.unexplainedAttempts(), []);
    for (const id of ids) assert.equal(deliveries.of(id).length >= 1, !superseded.has(id), `${id} was delivered unless superseded`);
  });
});

