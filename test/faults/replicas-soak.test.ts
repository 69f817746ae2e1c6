import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MongoClient } from "mongodb";
import { signToken } from "../../src/auth/jwt";
import { ESCALATABLE, TRANSITIONS } from "../../src/commands/state-machine";
import { createSimulatedDevice, DeviceClient } from "../../src/device-sdk";
import {
  CommandDocument,
  CommandUpdatedDocument,
  DeviceStateDocument,
  RegisterDeviceDocument,
  RetryCommandDocument,
  SendCommandDocument,
  type CommandQuery,
  type CommandStatus,
  type CommandUpdatedSubscription,
} from "../generated/graphql";
import { DeliveryLog } from "../kit/deliveries";
import { commandMarker, TEST_JWT_SECRET } from "../kit/gateway";
import { GraphQLTestClient, type Subscription } from "../kit/graphql-client";
import { readMetric } from "../kit/metrics";
import { dropBrokerSession, startGatewayProcess, type GatewayProcess } from "../kit/process";
import { MOSQUITTO_URL, startGuardedTestStore, uniqueName, type GuardedTestStore } from "../kit/store";
import { teardown } from "../kit/teardown";
import { waitUntil } from "../kit/wait";

// Scaled by environment: the CI default is small but not trivial; the full run is
// SOAK_DEVICES=50 SOAK_COMMANDS=500 TEST_TIMEOUT_MS=900000 node dist/test/run-tests.js dist/test/faults/replicas-soak.test.js
const DEVICES = Number(process.env.SOAK_DEVICES ?? 12);
const COMMANDS = Number(process.env.SOAK_COMMANDS ?? 120);
const REPLICAS = 3;
/** Every tenth command goes to the device that fails a first attempt. */
const FAILING_EVERY = 10;
const TIMEOUT_SECONDS = 15;
/** CANCELED: a setpoint superseded by a newer one while it was queued (a flapping device). */
const FINAL: CommandStatus[] = ["SUCCEEDED", "FAILED", "TIMED_OUT", "EXPIRED", "CANCELED"];
/** Below the runner's budget for the file, so a stuck command fails here, with its report and the hooks run. */
const TEST_BUDGET_MS = Number(process.env.TEST_TIMEOUT_MS ?? 240_000) - 30_000;

type Final = NonNullable<CommandQuery["command"]>;

/**
 * Three gateway processes on one store and one Mosquitto (replies through a shared subscription),
 * devices that drop 10% of commands and disconnect at random, and one device that fails every first
 * attempt. Invariants: every command ends in a final state, most of the lossy devices' ones SUCCEEDED
 * after DELIVERED, some timed out, each with one TIMED_OUT alert; a failed command retried runs again
 * and succeeds; a subscriber on each replica saw every transition of every command; no command ran
 * twice; the gateway published each attempt once (one replica) and raised no attempt on its own; a
 * setpoint superseded while queued was never sent; each device's reported state is one of its
 * SUCCEEDED setpoints.
 * The replicas share a FerretDB of the file's own with the version guard on `commands`: without it their
 * compare-and-set is not atomic (FERRETDB.md §2), racing writes overwrite each other, and commands are
 * left SENT or DELIVERED that no replica still holds, which is FerretDB's limit, not the gateway's.
 */
describe(`${REPLICAS} replicas, ${DEVICES} devices, ${COMMANDS} commands, lossy and flapping devices`, () => {
  const database = uniqueName("soak_");
  const prefix = uniqueName("s");
  const tenant = uniqueName("tenant-");
  const replicaIds = Array.from({ length: REPLICAS }, () => uniqueName("r"));
  const gateways: GatewayProcess[] = [];
  const clients: GraphQLTestClient[] = [];
  const lossy: DeviceClient[] = [];
  let failing: DeviceClient;
  // Connected and never answering: its command must time out (the lossy devices' drops may be healed by
  // the resend a reconnect brings, and on a loaded machine superseding leaves few sends to drop).
  let silent: DeviceClient;
  const markerDevice = uniqueName("marker-");
  const deliveries = new DeliveryLog();
  const subscriptions: Array<Subscription<CommandUpdatedSubscription>> = [];
  let store: GuardedTestStore;
  let storeUri: string;

  before(async () => {
    store = await startGuardedTestStore();
    storeUri = store.uri;
    const token = await signToken(TEST_JWT_SECRET, { sub: "soak-admin", tenant, roles: ["admin"] });
    const env = (replicaId: string) => ({
      MONGODB_URI: storeUri,
      MONGODB_DB: database,
      MQTT_URL: MOSQUITTO_URL,
      MQTT_TOPIC_PREFIX: prefix,
      MQTT_SHARED_GROUP: `${prefix}-group`,
      JWT_SECRET: TEST_JWT_SECRET,
      REPLICA_ID: replicaId,
      DEMO: "0",
      RATE_LIMIT_MUTATIONS_PER_MINUTE: "100000",
    });
    // The first one alone: FerretDB v1 breaks connections when several clients create one new database's
    // collections and indexes at once. The others then start together.
    gateways.push(await startGatewayProcess(env(replicaIds[0]!)));
    // Its collections exist now; the others start on a guarded table.
    await store.guard(database);
    const started = await Promise.allSettled(replicaIds.slice(1).map((id) => startGatewayProcess(env(id))));
    for (const result of started) if (result.status === "fulfilled") gateways.push(result.value);
    for (const result of started) if (result.status === "rejected") throw result.reason;
    for (const gateway of gateways) clients.push(new GraphQLTestClient(gateway.url, { token }));

    const register = (id: string, model = "thermostat") => clients[0]!.data(RegisterDeviceDocument, { input: { id, site: "site-a", model } });
    const lossyIds = Array.from({ length: DEVICES }, (_, i) => uniqueName(`soak${i}-`));
    // A valve: its commands do not supersede each other, so every failed one is retried and runs again.
    const failingId = uniqueName("flaky-");
    const silentId = uniqueName("silent-");
    await Promise.all([...[...lossyIds, markerDevice].map((id) => register(id)), register(failingId, "valve"), register(silentId, "valve")]);
    for (const deviceId of lossyIds) {
      lossy.push(createSimulatedDevice({ deviceId, model: "thermostat", brokerUrl: MOSQUITTO_URL, topicPrefix: prefix, latencyMs: [10, 150], dropRate: 0.1 }));
    }
    failing = new DeviceClient({
      deviceId: failingId,
      brokerUrl: MOSQUITTO_URL,
      topicPrefix: prefix,
      handler: ({ attempt, payload }) => (attempt === 1 ? { error: { code: "FLAKY", message: "fails a first attempt" } } : { result: { open: true, seconds: payload.seconds } }),
    });
    silent = new DeviceClient({ deviceId: silentId, brokerUrl: MOSQUITTO_URL, topicPrefix: prefix, handler: () => ({ result: {} }), drop: () => true });
    for (const device of [...lossy, failing, silent]) deliveries.watch(device);
    await Promise.all([...lossy, failing, silent].map((device) => device.start()));

    // The marker device never connects: its commands stay QUEUED, an event each and nothing else.
    const markerInput = { deviceId: markerDevice, type: "thermostat.setTemperature", payload: { celsius: 20 } };
    for (const client of clients) {
      const subscription = await client.subscribe(CommandUpdatedDocument, {});
      subscriptions.push(subscription);
      await subscription.ready(commandMarker(client, markerInput));
    }
  });

  after(() =>
    teardown([
      ["closing the subscriptions", () => Promise.all(subscriptions.map((s) => s.close()))],
      ["stopping the devices", () => Promise.all([...lossy, failing, silent].map((d) => d?.stop({ graceful: false })))],
      ["stopping the gateways", () => Promise.all(gateways.map((g) => g.stop()))],
      ["dropping the gateways' broker sessions", () => Promise.all(replicaIds.map((id) => dropBrokerSession(MOSQUITTO_URL, `gateway-${id}`)))],
      ["stopping the store", async () => store?.stop()],
    ]),
  );

  it("ends every command truthfully, alerts once per timeout, retries a failure, shows every transition on every replica, runs nothing twice", { timeout: TEST_BUDGET_MS }, async () => {
    const deadline = Date.now() + TEST_BUDGET_MS - 20_000;
    // Random disconnects of the lossy devices while the commands flow.
    let flapping = true;
    const flaps = (async () => {
      let n = 0;
      while (flapping) {
        await new Promise((resolve) => setTimeout(resolve, 400));
        const device = lossy[n++ % lossy.length]!;
        await device.stop({ graceful: false });
        await new Promise((resolve) => setTimeout(resolve, 200 + Math.random() * 500));
        await device.start();
      }
    })();

    const ids: string[] = [];
    const toFailing = new Set<string>();
    const { sendCommand: toSilent } = await clients[0]!.data(SendCommandDocument, {
      input: { deviceId: silent.deviceId, type: "valve.open", payload: { seconds: 5 }, timeoutSeconds: TIMEOUT_SECONDS },
    });
    ids.push(toSilent.id);
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < COMMANDS) {
          const n = next++;
          const device = n % FAILING_EVERY === FAILING_EVERY - 1 ? failing : lossy[n % DEVICES]!;
          const { sendCommand } = await clients[n % REPLICAS]!.data(SendCommandDocument, {
            // Long enough for a loaded machine: what times out is what a device dropped (or a lost reply).
            input:
              device === failing
                ? { deviceId: device.deviceId, type: "valve.open", payload: { seconds: 1 + (n % 60) }, timeoutSeconds: TIMEOUT_SECONDS }
                : { deviceId: device.deviceId, type: "thermostat.setTemperature", payload: { celsius: 5 + (n % 30) }, timeoutSeconds: TIMEOUT_SECONDS },
          });
          ids.push(sendCommand.id);
          if (device === failing) toFailing.add(sendCommand.id);
        }
      }),
    );
    flapping = false;
    await flaps;

    const finals = await settle(clients[0]!, ids, deadline, FINAL, () => rejectedReplies(gateways));

    const history = (id: string) => finals.get(id)!.history.map((h) => h.status);
    // Superseded while queued (its device away): never handed to the broker, never run.
    const superseded = ids.filter((id) => finals.get(id)!.status === "CANCELED");
    for (const id of superseded) {
      assert.ok(finals.get(id)!.supersededBy, `${id} CANCELED only by superseding: ${history(id).join(" ")}`);
      assert.deepEqual(history(id), ["QUEUED", "CANCELED"], `${id} was superseded after it was sent`);
      assert.equal(deliveries.of(id).length, 0, `${id} superseded, yet delivered`);
    }
    const lossyIds = ids.filter((id) => !toFailing.has(id) && !superseded.includes(id));
    // Liveness: replies through the shared group arrive and are applied.
    const succeededDelivered = lossyIds.filter((id) => finals.get(id)!.status === "SUCCEEDED" && history(id).includes("DELIVERED"));
    assert.ok(
      succeededDelivered.length >= lossyIds.length * 0.6,
      `most lossy commands SUCCEEDED after DELIVERED: ${succeededDelivered.length}/${lossyIds.length}; ${await rejectedReplies(gateways)}`,
    );

    // FAILED → retry → run again. A first attempt that timed out (a slow machine) is retried the same way.
    const retried = [...toFailing].filter((id) => finals.get(id)!.status !== "SUCCEEDED" && !superseded.includes(id));
    for (const [n, id] of retried.entries()) {
      const { retryCommand } = await clients[n % REPLICAS]!.data(RetryCommandDocument, { id });
      assert.equal(retryCommand.attempt, 2);
      deliveries.retried(id);
    }
    for (const [id, final] of await settle(clients[1]!, retried, deadline, FINAL, () => rejectedReplies(gateways))) finals.set(id, final);

    const count = (status: CommandStatus) => [...finals.values()].filter((f) => f.status === status).length;
    const timedOut = ids.filter((id) => history(id).includes("TIMED_OUT"));
    const sends = (await Promise.all(gateways.map((g) => readMetric(g.url, "gateway_commands_published_total", { kind: "send" })))).reduce((a, b) => a + b, 0);
    const redeliveries = (await Promise.all(gateways.map((g) => readMetric(g.url, "gateway_commands_published_total", { kind: "redelivery" })))).reduce((a, b) => a + b, 0);
    console.log(
      `# soak: ${ids.length} commands on ${DEVICES} lossy devices and 1 failing one through ${REPLICAS} replicas: ` +
        `${count("SUCCEEDED")} SUCCEEDED (${succeededDelivered.length}/${lossyIds.length} lossy after DELIVERED), ${count("FAILED")} FAILED, ` +
        `${count("TIMED_OUT")} TIMED_OUT, ${superseded.length} superseded; ${timedOut.length} timed out at some point; ${retried.length} retried; ` +
        `${sends} sends and ${redeliveries} redeliveries published, ${deliveries.all.length} deliveries received`,
    );

    // Whichever replica applied which reply: each history is a walk of the state machine (no DELIVERED after SUCCEEDED).
    for (const id of ids) {
      const walk = history(id);
      walk.slice(1).forEach((to, i) => assert.ok(isStep(walk[i]!, to), `${id}: ${walk[i]} → ${to} is no transition, in ${walk.join(" ")}`));
    }
    assert.ok(timedOut.includes(toSilent.id), `the silent device's command timed out: ${history(toSilent.id).join(" ")}`);
    assert.ok(retried.length >= 1, "the failing device failed its first attempts");
    for (const id of retried) {
      assert.equal(finals.get(id)!.status, "SUCCEEDED", `${id} after its retry: ${history(id).join(" ")}; ${await rejectedReplies(gateways)}`);
      assert.equal(finals.get(id)!.attempt, 2);
      assert.equal(failing.executions.get(id), 2, `${id} ran again on retry`);
      assert.ok(history(id).includes("FAILED") || history(id).includes("TIMED_OUT"), `${id}: ${history(id).join(" ")}`);
    }

    const mongo = await MongoClient.connect(storeUri);
    try {
      const alerts = mongo.db(database).collection("alerts");
      for (const id of timedOut) {
        await waitUntil(`a TIMED_OUT alert for ${id}`, async () => (await alerts.countDocuments({ commandId: id, kind: "TIMED_OUT" })) > 0, 20_000);
        assert.equal(await alerts.countDocuments({ commandId: id, kind: "TIMED_OUT" }), 1, `one TIMED_OUT alert for ${id}`);
      }
    } finally {
      await mongo.close();
    }

    // Events travel over the broker: wait until every replica's subscriber has every transition.
    for (const [r, subscription] of subscriptions.entries()) {
      const missing = () =>
        ids.flatMap((id) => {
          const seen = new Set(subscription.values.filter((v) => v.commandUpdated.id === id).map((v) => v.commandUpdated.status));
          return history(id)
            .filter((status) => !seen.has(status))
            .map((status) => `${status} of ${id}`);
        });
      await waitUntil(`replica ${r} saw every transition (missing: ${missing().slice(0, 5).join(", ")})`, () => missing().length === 0, 20_000).catch(() =>
        assert.fail(`replica ${r} never saw: ${missing().slice(0, 10).join(", ")}`),
      );
    }

    // Executed at most once, whatever the gateway sent.
    for (const id of lossyIds) {
      const runs = lossy.reduce((sum, device) => sum + (device.executions.get(id) ?? 0), 0);
      assert.ok(runs <= 1, `command ${id} ran ${runs} times`);
    }
    // What the gateway sent: attempts rise only through retryCommand; one dispatch per attempt across
    // the replicas; a resend only after a reconnect (each replica resends once per announcement).
    assert.deepEqual(deliveries.unexplainedAttempts(), [], "an attempt no retry made");
    assert.equal(sends, ids.length - superseded.length + retried.length, "each attempt dispatched by one replica, once");
    assert.deepEqual(deliveries.repeatedWithin(1 + REPLICAS), [], "copies of one attempt on one connection");

    // Device state: each device reports a setpoint one of its SUCCEEDED commands set, whichever replica
    // applied which reply (the state is written after the transition, so it is waited for). Not "the last
    // one": the devices collection of this FerretDB has no version guard, so two replicas' state writes can
    // overwrite each other (README, Known limits); on MongoDB the write conditioned on stateUpdatedAt keeps
    // the latest completion.
    const setpoints = new Map<string, Set<unknown>>();
    for (const final of finals.values()) {
      if (final.status !== "SUCCEEDED" || final.deviceId === failing.deviceId) continue;
      const known = setpoints.get(final.deviceId) ?? new Set<unknown>();
      known.add((final.payload as { celsius?: unknown }).celsius);
      setpoints.set(final.deviceId, known);
    }
    assert.ok(setpoints.size > 0, "some device ended a setpoint SUCCEEDED");
    for (const [deviceId, values] of setpoints) {
      const reported = async () => (await clients[2]!.data(DeviceStateDocument, { id: deviceId })).device?.reported as Record<string, unknown> | undefined;
      await waitUntil(`${deviceId} reports one of its setpoints`, async () => values.has((await reported())?.setpoint), 20_000).catch(async () =>
        assert.fail(`${deviceId} reports ${JSON.stringify(await reported())}, its SUCCEEDED setpoints were ${JSON.stringify([...values])}`),
      );
    }
  });
});

/** A history entry may follow another: a transition of the state machine, or an escalation (the status stays). */
const isStep = (from: CommandStatus, to: CommandStatus) =>
  (from === to && ESCALATABLE.includes(from)) || Object.values(TRANSITIONS).some((rule) => rule.to === to && rule.from.includes(from));

/** Polls until every command is in one of `statuses` (default: any final one); fails at `deadline` with what is stuck. */
async function settle(
  client: GraphQLTestClient,
  ids: string[],
  deadline: number,
  statuses: CommandStatus[],
  diagnose: () => Promise<string>,
): Promise<Map<string, Final>> {
  const settled = new Map<string, Final>();
  let pending = [...ids];
  while (pending.length > 0) {
    const looked: Array<{ id: string; command: Final | null | undefined }> = [];
    // A few at a time: the poll must not be the load that slows the gateways down.
    for (let i = 0; i < pending.length; i += 10) {
      const batch = pending.slice(i, i + 10);
      looked.push(...(await Promise.all(batch.map(async (id) => ({ id, command: (await client.data(CommandDocument, { id })).command })))));
    }
    for (const { id, command } of looked) if (command && statuses.includes(command.status)) settled.set(id, command);
    pending = pending.filter((id) => !settled.has(id));
    if (pending.length === 0) break;
    if (Date.now() >= deadline) {
      const stuck = looked.filter(({ id }) => pending.includes(id)).slice(0, 5);
      assert.fail(
        `${pending.length} commands not ${statuses.join("/")} in time, e.g. ${stuck
          .map(({ id, command }) => `${id} ${command?.status}: ${command?.history.map((h) => h.status).join(" ")}`)
          .join("; ")}; ${await diagnose()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return settled;
}

/** Replies each replica refused, by reason: what a stuck command's report needs. */
async function rejectedReplies(gateways: GatewayProcess[]): Promise<string> {
  const reasons = ["unknown_command", "wrong_device", "stale_attempt", "not_allowed_in_state", "malformed"];
  const perReplica = await Promise.all(
    gateways.map(async (g) => (await Promise.all(reasons.map(async (reason) => `${reason}=${await readMetric(g.url, "gateway_replies_rejected_total", { reason })}`))).join(" ")),
  );
  return `replies rejected per replica: ${perReplica.map((r, i) => `[${i}] ${r}`).join("; ")}`;
}
