import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MongoClient } from "mongodb";
import type { Alert } from "../../src/alerts/alert";
import type { Command, CommandStatus } from "../../src/commands/command";
import { createLogger } from "../../src/logger";
import { Retention } from "../../src/retention/retention";
import type { AlertDelivery, DeliveryStatus } from "../../src/alerts/webhooks/alert-webhook";
import { AlertDeliveryRepository } from "../../src/store/alert-delivery-repository";
import { AlertRepository } from "../../src/store/alert-repository";
import { AlertWebhookRepository } from "../../src/store/alert-webhook-repository";
import { CommandRepository } from "../../src/store/command-repository";
import { mongoCommandIdQueries } from "../../src/store/store-ports";
import type { FleetCommand, FleetCommandStatus } from "../../src/fleet/fleet-command";
import { fleetAbortAlertId } from "../../src/fleet/fleet-command";
import { FleetCommandRepository } from "../../src/store/fleet-command-repository";
import { mongoFleetIdQueries, type CommandIdQueries, type FleetIdQueries } from "../../src/store/store-ports";
import { startGuardedTestStore, testStoreUri, uniqueName, type GuardedTestStore } from "../kit/store";

const DAY = 86_400_000;
const NOW = new Date();
const daysAgo = (days: number) => new Date(NOW.getTime() - days * DAY);

function command(id: string, status: CommandStatus, updatedAt: Date, history: CommandStatus[] = [status]): Command {
  return {
    id,
    v: 0,
    tenant: "t",
    site: "s",
    deviceId: "d",
    type: "x",
    payload: {},
    status,
    source: "OPERATOR",
    issuedBy: "u",
    attempt: 1,
    timeoutSeconds: 30,
    createdAt: updatedAt,
    updatedAt,
    history: history.map((s) => ({ status: s, at: updatedAt, actor: "gateway" })),
  };
}

function alert(id: string, commandId: string, resolved: boolean): Alert {
  return { id, tenant: "t", site: "s", kind: "TIMED_OUT", commandId, deviceId: "d", level: 0, raisedAt: daysAgo(40), message: "m", ...(resolved ? { resolvedAt: daysAgo(39) } : {}) };
}

function fleet(id: string, status: FleetCommandStatus, updatedAt: Date, targetChunks = 0): FleetCommand {
  const creator = { id: "u", tenant: "t", roles: ["operator"] } as unknown as FleetCommand["creator"];
  return {
    id,
    v: 0,
    tenant: "t",
    name: id,
    type: "x",
    payload: {},
    target: { site: "s" },
    status,
    createdBy: "u",
    creator,
    createdAt: updatedAt,
    updatedAt,
    maxPerMinute: 600,
    targeted: 0,
    skipped: 0,
    sendable: 0,
    targetChunks,
    counts: {},
    next: 0,
    refused: [],
  };
}

function delivery(alertId: string, webhookId: string, status: DeliveryStatus, attempts: number): AlertDelivery {
  return { id: `${alertId}:${webhookId}`, tenant: "t", alertId, webhookId, body: "{}", status, attempts, createdAt: daysAgo(40), nextAttemptAt: daysAgo(39) };
}

/**
 * RETENTION_DAYS (CONTRACT §6.5): final commands older than the period go, with their resolved alerts
 * and the ended webhook deliveries of those alerts (and their attempt claims); nothing else does.
 */
describe("retention", () => {
  let client: MongoClient;
  let commands: CommandRepository;
  let alerts: AlertRepository;
  let noFleets: { repository: FleetCommandRepository; ids: FleetIdQueries };
  let deliveries: AlertDeliveryRepository;
  let webhooks: AlertWebhookRepository;
  const retentionOf = (days: number) =>
    new Retention(commands, alerts, { deliveries, webhooks }, mongoCommandIdQueries(commands.collection), noFleets, days, { now: () => NOW }, createLogger("warn"));

  before(async () => {
    client = await MongoClient.connect(await testStoreUri());
    const db = client.db(uniqueName("ret_"));
    commands = new CommandRepository(db);
    alerts = new AlertRepository(db);
    noFleets = { repository: new FleetCommandRepository(db), ids: { finishedIdsUpdatedBefore: async () => [] } };
    deliveries = new AlertDeliveryRepository(db);
    webhooks = new AlertWebhookRepository(db);
  });
  after(async () => client.close());

  it("deletes final commands older than the period and their resolved alerts, in batches; keeps the rest", async () => {
    const old = Array.from({ length: 230 }, (_, i) => command(`old-${i}`, "SUCCEEDED", daysAgo(31)));
    const oldWithAlerts = command("old-alerted", "SUCCEEDED", daysAgo(31), ["QUEUED", "SENT", "TIMED_OUT", "SUCCEEDED"]);
    const keep = [command("recent", "SUCCEEDED", daysAgo(29)), command("old-active", "SENT", daysAgo(31)), command("old-timed-out", "TIMED_OUT", daysAgo(31))];
    for (const c of [...old, oldWithAlerts, ...keep]) assert.ok(await commands.insert(c));
    await alerts.insert(alert("old-alerted:1:TIMED_OUT", "old-alerted", true));
    await alerts.insert(alert("old-alerted:1:FAILED", "old-alerted", false));

    const retention = retentionOf(30);
    assert.equal((await retention.purge()).commands, 231, "every old final command, over more than one batch");

    const left = (await commands.collection.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id).sort();
    assert.deepEqual(left, ["old-active", "old-timed-out", "recent"]);
    const alertsLeft = (await alerts.collection.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id);
    assert.deepEqual(alertsLeft, ["old-alerted:1:FAILED"], "an open alert stays");
    assert.equal((await retention.purge()).commands, 0, "a second round finds nothing");
  });

  it("deletes the ended deliveries of a purged command's alerts and their attempt claims; keeps pending ones and a recent command's", async () => {
    for (const id of ["hook-a", "hook-b"]) await webhooks.insert({ id, tenant: "t", url: "https://example.test/", secret: "s", createdBy: "u", createdAt: daysAgo(50), failing: false });
    const old = command("old-failed", "FAILED", daysAgo(31), ["QUEUED", "SENT", "FAILED"]);
    const recent = command("recent-failed", "FAILED", daysAgo(2), ["QUEUED", "SENT", "FAILED"]);
    for (const c of [old, recent]) assert.ok(await commands.insert(c));
    const oldAlert = "old-failed:1:FAILED";
    const recentAlert = "recent-failed:1:FAILED";
    await alerts.insert({ ...alert(oldAlert, old.id, true), kind: "FAILED" });
    await alerts.insert({ ...alert(recentAlert, recent.id, true), kind: "FAILED" });
    const ended = [delivery(oldAlert, "hook-a", "DELIVERED", 3)];
    const kept = [delivery(oldAlert, "hook-b", "PENDING", 1), delivery(recentAlert, "hook-a", "FAILED", 2)];
    for (const d of [...ended, ...kept]) assert.ok(await deliveries.insert(d));
    // Claims of attempts 1–3 and of a 4th whose attempt a crash left unrecorded; one of the pending delivery; the recent one's.
    for (let n = 1; n <= 4; n++) assert.ok(await deliveries.claimAttempt(ended[0]!.id, "hook-a", n, "r1", daysAgo(39)));
    assert.ok(await deliveries.claimAttempt(kept[0]!.id, "hook-b", 1, "r1", daysAgo(39)));
    assert.ok(await deliveries.claimAttempt(kept[1]!.id, "hook-a", 1, "r1", daysAgo(1)));

    assert.deepEqual(await retentionOf(30).purge(), { commands: 1, fleetCommands: 0 });
    const ids = async (collection: { find(filter: object, options: object): { toArray(): Promise<Array<{ _id: string }>> } }) =>
      (await collection.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id).sort();
    assert.deepEqual(await ids(deliveries.collection), kept.map((d) => d.id).sort(), "the ended old delivery went; the pending one and the recent command's stay");
    assert.deepEqual(await ids(deliveries.claims), [`${kept[0]!.id}#1`, `${kept[1]!.id}#1`].sort(), "the ended delivery's claims went with it");
    assert.equal(await commands.findById(old.id), null);
    assert.ok(await commands.findById(recent.id));
  });

  it("RETENTION_DAYS=0 keeps everything", async () => {
    await commands.insert(command("ancient", "SUCCEEDED", daysAgo(3650)));
    const retention = retentionOf(0);
    retention.start();
    await retention.stop();
    assert.ok(await commands.findById("ancient"));
  });

  /** The same round on the lookups the gateway uses: MongoDB queries, or SQL over the embedded store's indexes. */
  async function fleetRound(db: ReturnType<MongoClient["db"]>, commandIds: CommandIdQueries, fleetIds: FleetIdQueries) {
    const fleets = new FleetCommandRepository(db);
    const fleetAlerts = new AlertRepository(db);
    const old = Array.from({ length: 205 }, (_, i) => fleet(`old-${i}`, (["COMPLETED", "ABORTED", "CANCELED"] as const)[i % 3], daysAgo(31)));
    const withTargets = fleet("old-targets", "ABORTED", daysAgo(31), 2);
    const openAlert = fleet("old-open-alert", "ABORTED", daysAgo(31));
    const keep = [fleet("recent", "COMPLETED", daysAgo(29)), fleet("old-running", "RUNNING", daysAgo(31)), fleet("old-paused", "PAUSED", daysAgo(31)), fleet("old-scheduled", "SCHEDULED", daysAgo(31))];
    for (const f of [...old, withTargets, openAlert, ...keep]) assert.ok(await fleets.insert(f));
    await fleets.saveTargets(withTargets.id, [
      { deviceIds: ["d1"], skipped: [] },
      { deviceIds: ["d2"], skipped: [] },
    ]);
    await fleets.saveTargets("recent", [{ deviceIds: ["d3"], skipped: [] }]);
    const abortAlert = (id: string, resolved: boolean): Alert => ({ ...alert(fleetAbortAlertId(id), "c", resolved) });
    await fleetAlerts.insert(abortAlert(withTargets.id, true));
    await fleetAlerts.insert(abortAlert(openAlert.id, false));

    const retention = new Retention(new CommandRepository(db), fleetAlerts, { deliveries: new AlertDeliveryRepository(db), webhooks: new AlertWebhookRepository(db) }, commandIds, { repository: fleets, ids: fleetIds }, 30, { now: () => NOW }, createLogger("warn"));
    assert.deepEqual(await retention.purge(), { commands: 0, fleetCommands: 207 }, "every old finished fleet command, over more than one batch");

    const left = (await fleets.collection.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id).sort();
    assert.deepEqual(left, ["old-paused", "old-running", "old-scheduled", "recent"]);
    const chunksLeft = (await db.collection("fleet_targets").find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id);
    assert.deepEqual(chunksLeft, ["recent/0"], "the deleted fleet commands' target chunks went with them");
    const alertsLeft = (await fleetAlerts.collection.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id);
    assert.deepEqual(alertsLeft, [fleetAbortAlertId(openAlert.id)], "an open abort alert stays");
    assert.equal((await retention.purge()).fleetCommands, 0, "a second round finds nothing");
  }

  it("deletes fleet commands finished before the period, with their target chunks and resolved abort alert (MongoDB queries)", async () => {
    const db = client.db(uniqueName("retf_"));
    await new FleetCommandRepository(db).ensureIndexes();
    await fleetRound(db, mongoCommandIdQueries(new CommandRepository(db).collection), mongoFleetIdQueries(new FleetCommandRepository(db).collection));
  });

  describe("on the embedded store's SQLite indexes", () => {
    let guarded: GuardedTestStore;
    let guardedClient: MongoClient;
    before(async () => {
      guarded = await startGuardedTestStore();
      guardedClient = await MongoClient.connect(guarded.uri);
    });
    after(async () => {
      await guardedClient?.close();
      await guarded?.stop();
    });

    it("deletes the same fleet commands through the SQL lookup", async () => {
      const name = uniqueName("retg_");
      const db = guardedClient.db(name);
      await new FleetCommandRepository(db).ensureIndexes();
      const ports = await guarded.guard(name);
      await fleetRound(db, ports.commandIdQueries, ports.fleetIdQueries);
    });
  });
});
