import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MongoClient } from "mongodb";
import { signToken } from "../../src/auth/jwt";
import { createSimulatedDevice, type DeviceClient } from "../../src/device-sdk";
import { CreateFleetCommandDocument, FleetCommandDocument, RegisterDeviceDocument } from "../generated/graphql";
import { TEST_JWT_SECRET } from "../kit/gateway";
import { GraphQLTestClient } from "../kit/graphql-client";
import { dropBrokerSession, startGatewayProcess, type GatewayProcess } from "../kit/process";
import { MOSQUITTO_URL, startGuardedTestStore, uniqueName, type GuardedTestStore } from "../kit/store";
import { waitUntil } from "../kit/wait";

const DEVICES = 40;
const RATE = 600;

/**
 * Two gateway processes on one store and one Mosquitto; the one driving a fleet command is SIGKILLed
 * mid-rollout. The other takes the lease over and finishes it, and every device runs the command once.
 */
describe("fleet command driver killed mid-rollout", () => {
  const database = uniqueName("fleet_");
  const prefix = uniqueName("f");
  const tenant = uniqueName("tenant-");
  const replicaIds = [uniqueName("r"), uniqueName("r")];
  const gateways: GatewayProcess[] = [];
  const clients: GraphQLTestClient[] = [];
  const devices: DeviceClient[] = [];
  let store: MongoClient;
  let guarded: GuardedTestStore;

  before(async () => {
    // A FerretDB of the file's own with the version guard: two replicas' compare-and-sets on an unguarded
    // FerretDB v1 are not atomic and can strand a child SENT (FERRETDB.md §2), which is not the fleet's to test.
    guarded = await startGuardedTestStore();
    const storeUri = guarded.uri;
    store = await MongoClient.connect(storeUri);
    const token = await signToken(TEST_JWT_SECRET, { sub: "fleet-admin", tenant, roles: ["admin"] });
    const env = (replicaId: string) => ({
      MONGODB_URI: storeUri,
      MONGODB_DB: database,
      MQTT_URL: MOSQUITTO_URL,
      MQTT_TOPIC_PREFIX: prefix,
      MQTT_SHARED_GROUP: `${prefix}-group`,
      JWT_SECRET: TEST_JWT_SECRET,
      REPLICA_ID: replicaId,
      DEMO: "0",
    });
    // One after the other: FerretDB v1 breaks connections when two clients create one database's collections at once.
    gateways.push(await startGatewayProcess(env(replicaIds[0]!)));
    await guarded.guard(database);
    gateways.push(await startGatewayProcess(env(replicaIds[1]!)));
    for (const gateway of gateways) clients.push(new GraphQLTestClient(gateway.url, { token }));
    for (let i = 0; i < DEVICES; i++) {
      const deviceId = `${prefix}-d${String(i).padStart(3, "0")}`;
      await clients[0]!.data(RegisterDeviceDocument, { input: { id: deviceId, site: "site-f", model: "thermostat" } });
      devices.push(createSimulatedDevice({ deviceId, model: "thermostat", brokerUrl: MOSQUITTO_URL, topicPrefix: prefix, latencyMs: [0, 20] }));
    }
    await Promise.all(devices.map((d) => d.start()));
  });

  after(async () => {
    await Promise.all(devices.map((d) => d.stop({ graceful: false })));
    await Promise.all(gateways.map((g) => g.stop()));
    await Promise.all(replicaIds.map((id) => dropBrokerSession(MOSQUITTO_URL, `gateway-${id}`)));
    await store?.close();
    await guarded?.stop();
  });

  it("another replica takes over within seconds and every device runs the command exactly once", { timeout: 180_000 }, async () => {
    const db = store.db(database);
    const { createFleetCommand: created } = await clients[0]!.data(CreateFleetCommandDocument, {
      input: { name: "takeover", target: { site: "site-f" }, type: "thermostat.setTemperature", payload: { celsius: 20 }, rollout: { maxPerMinute: RATE },
        // A child the killed replica had sent but not seen answered times out soon, so the fleet command can complete.
        timeoutSeconds: 10 },
    });
    const children = () => db.collection("commands").countDocuments({ fleetCommandId: created.id });
    await waitUntil("a quarter of the children started", async () => (await children()) >= DEVICES / 4, 30_000);
    const lease = await db.collection<{ _id: string; owner: string }>("fleet_leases").findOne({ _id: `fleet:${created.id}` });
    assert.ok(lease, "a replica holds the fleet command's lease");
    const driver = replicaIds.indexOf(lease.owner);
    assert.ok(driver >= 0, `lease owner ${lease.owner}`);
    const atKill = await children();
    await gateways[driver]!.kill();
    assert.ok(atKill < DEVICES, "killed mid-rollout");

    const survivor = clients[1 - driver]!;
    let status = "";
    await waitUntil(
      `the surviving replica completes it (${status})`,
      async () => (status = (await survivor.data(FleetCommandDocument, { id: created.id })).fleetCommand?.status ?? "") === "COMPLETED",
      120_000,
    );
    const { fleetCommand: finished } = await survivor.data(FleetCommandDocument, { id: created.id });
    const fleetLines = (g: GatewayProcess) => g.output().split("\n").filter((l) => l.includes('"component":"fleet"')).join("\n");
    assert.equal(await children(), DEVICES, `${JSON.stringify(finished)}\n${fleetLines(gateways[1 - driver]!)}\n--- killed:\n${fleetLines(gateways[driver]!)}`);
    assert.deepEqual(
      devices.map((d) => d.received),
      devices.map(() => 1),
      "every device ran it exactly once",
    );
    // Every child is counted once, in a settled status (a reply lost with the killed replica may leave one TIMED_OUT: the command path's business).
    const { fleetCommand } = await survivor.data(FleetCommandDocument, { id: created.id });
    const counted = fleetCommand!.counts.filter((c) => c.count > 0);
    assert.equal(counted.reduce((sum, c) => sum + c.count, 0), DEVICES, JSON.stringify(counted));
    assert.ok(counted.every((c) => ["SUCCEEDED", "TIMED_OUT"].includes(c.status)), JSON.stringify(counted));
  });
});
