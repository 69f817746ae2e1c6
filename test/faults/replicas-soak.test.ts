import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MongoClient } from "mongodb";
import { signToken } from "../../src/auth/jwt";
import { createSimulatedDevice, type DeviceClient } from "../../src/device-sdk";
import { findFreePort } from "../../src/embedded/free-port";
import {
  CommandDocument,
  CommandUpdatedDocument,
  RegisterDeviceDocument,
  SendCommandDocument,
  type CommandStatus,
  type CommandUpdatedSubscription,
} from "../generated/graphql";
import { TEST_JWT_SECRET } from "../kit/gateway";
import { GraphQLTestClient, type Subscription } from "../kit/graphql-client";
import { dropBrokerSession, startGatewayProcess, type GatewayProcess } from "../kit/process";
import { MOSQUITTO_URL, testStoreUri, uniqueName } from "../kit/store";

// Scaled by environment: the CI default is small but not trivial; the full run is
// SOAK_DEVICES=50 SOAK_COMMANDS=500 TEST_TIMEOUT_MS=900000 node dist/test/run-tests.js dist/test/faults/replicas-soak.test.js
const DEVICES = Number(process.env.SOAK_DEVICES ?? 12);
const COMMANDS = Number(process.env.SOAK_COMMANDS ?? 120);
const REPLICAS = 3;
const FINAL: CommandStatus[] = ["SUCCEEDED", "FAILED", "TIMED_OUT", "EXPIRED"];

/**
 * Three gateway processes on one store and one Mosquitto (replies through a shared subscription),
 * devices that drop 10% of commands and disconnect at random. Invariants: every command ends in a
 * final state; one TIMED_OUT alert per timed-out command; a subscriber on each replica saw every
 * transition of every command; no command ran twice on a device.
 */
describe(`${REPLICAS} replicas, ${DEVICES} devices, ${COMMANDS} commands, lossy and flapping devices`, { timeout: 600_000 }, () => {
  const database = uniqueName("soak_");
  const prefix = uniqueName("s");
  const tenant = uniqueName("tenant-");
  const replicaIds = Array.from({ length: REPLICAS }, () => uniqueName("r"));
  const gateways: GatewayProcess[] = [];
  const clients: GraphQLTestClient[] = [];
  const devices: DeviceClient[] = [];
  const subscriptions: Array<Subscription<CommandUpdatedSubscription>> = [];
  let storeUri: string;

  before(async () => {
    storeUri = await testStoreUri();
    const token = await signToken(TEST_JWT_SECRET, { sub: "soak-admin", tenant, roles: ["admin"] });
    for (const replicaId of replicaIds) {
      const port = await findFreePort();
      gateways.push(
        await startGatewayProcess(
          {
            MONGODB_URI: storeUri,
            MONGODB_DB: database,
            MQTT_URL: MOSQUITTO_URL,
            MQTT_TOPIC_PREFIX: prefix,
            MQTT_SHARED_GROUP: `${prefix}-group`,
            JWT_SECRET: TEST_JWT_SECRET,
            REPLICA_ID: replicaId,
            DEMO: "0",
            RATE_LIMIT_MUTATIONS_PER_MINUTE: "100000",
          },
          port,
        ),
      );
      clients.push(new GraphQLTestClient(`http://127.0.0.1:${port}`, { token }));
    }
    for (let i = 0; i < DEVICES; i++) {
      const deviceId = uniqueName(`soak${i}-`);
      await clients[0]!.data(RegisterDeviceDocument, { input: { id: deviceId, site: "site-a", model: "thermostat" } });
      const device = createSimulatedDevice({ deviceId, model: "thermostat", brokerUrl: MOSQUITTO_URL, topicPrefix: prefix, latencyMs: [10, 150], dropRate: 0.1 });
      await device.start();
      devices.push(device);
    }
    for (const client of clients) subscriptions.push(await client.subscribe(CommandUpdatedDocument, {}));
  });

  after(async () => {
    await Promise.all(subscriptions.map((s) => s.close()));
    await Promise.all(devices.map((d) => d.stop({ graceful: false })));
    await Promise.all(gateways.map((g) => g.stop()));
    await Promise.all(replicaIds.map((id) => dropBrokerSession(MOSQUITTO_URL, `gateway-${id}`)));
  });

  it("ends every command truthfully, alerts once per timeout, shows every transition on every replica, runs nothing twice", { timeout: 600_000 }, async () => {
    // Random disconnects while the commands flow.
    let flapping = true;
    const flaps = (async () => {
      let n = 0;
      while (flapping) {
        await new Promise((resolve) => setTimeout(resolve, 400));
        const device = devices[n++ % devices.length]!;
        await device.stop({ graceful: false });
        await new Promise((resolve) => setTimeout(resolve, 200 + Math.random() * 500));
        await device.start();
      }
    })();

    const ids: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < COMMANDS) {
          const n = next++;
          const { sendCommand } = await clients[n % REPLICAS]!.data(SendCommandDocument, {
            input: { deviceId: devices[n % DEVICES]!.deviceId, type: "thermostat.setTemperature", payload: { celsius: 5 + (n % 30) }, timeoutSeconds: 3 },
          });
          ids.push(sendCommand.id);
        }
      }),
    );
    flapping = false;
    await flaps;

    const finals = new Map<string, { status: CommandStatus; history: CommandStatus[] }>();
    // The embedded store drains some tens of commands a second: allow for the backlog.
    const deadline = Date.now() + 60_000 + COMMANDS * 200;
    for (const id of ids) {
      for (;;) {
        const { command } = await clients[0]!.data(CommandDocument, { id });
        if (command && FINAL.includes(command.status)) {
          finals.set(id, { status: command.status, history: command.history.map((h) => h.status) });
          break;
        }
        if (Date.now() >= deadline) {
          const mongo = await MongoClient.connect(storeUri);
          const db = mongo.db(database);
          const doc = await db.collection("commands").findOne({ _id: id as never });
          const device = await db.collection("devices").findOne({ _id: doc?.deviceId });
          const lease = await db.collection("dispatch_leases").findOne({ _id: doc?.deviceId });
          const queued = await db.collection("commands").countDocuments({ deviceId: doc?.deviceId, status: "QUEUED" });
          await mongo.close();
          assert.fail(`command ${id} is still ${command?.status}: ${JSON.stringify({ claim: doc?.claim, device, lease, queued, now: new Date() })}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }

    const mongo = await MongoClient.connect(storeUri);
    try {
      const alerts = mongo.db(database).collection("alerts");
      const timedOut = [...finals].filter(([, f]) => f.history.includes("TIMED_OUT"));
      for (const [id] of timedOut) {
        assert.equal(await alerts.countDocuments({ commandId: id, kind: "TIMED_OUT" }), 1, `one TIMED_OUT alert for ${id}`);
      }

      // Events travel over the broker: give the last ones a moment, then every replica has seen everything.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      for (const [r, subscription] of subscriptions.entries()) {
        for (const [id, final] of finals) {
          const seen = new Set(subscription.values.filter((v) => v.commandUpdated.id === id).map((v) => v.commandUpdated.status));
          for (const status of final.history) assert.ok(seen.has(status), `replica ${r} saw ${status} of ${id}`);
        }
      }

      for (const id of ids) {
        const runs = devices.reduce((sum, device) => sum + (device.executions.get(id) ?? 0), 0);
        assert.ok(runs <= 1, `command ${id} ran ${runs} times`);
      }

      const count = (status: CommandStatus) => [...finals.values()].filter((f) => f.status === status).length;
      console.log(
        `# soak: ${ids.length} commands on ${DEVICES} devices through ${REPLICAS} replicas: ` +
          `${count("SUCCEEDED")} SUCCEEDED, ${count("FAILED")} FAILED, ${count("TIMED_OUT")} TIMED_OUT; ` +
          `${timedOut.length} timed out at some point, ${await alerts.countDocuments({ kind: "TIMED_OUT" })} TIMED_OUT alerts; ` +
          `${devices.reduce((sum, d) => sum + d.executed, 0)} executions`,
      );
    } finally {
      await mongo.close();
    }
  });
});
