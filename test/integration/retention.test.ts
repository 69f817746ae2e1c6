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
import { testStoreUri, uniqueName } from "../kit/store";

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
  let deliveries: AlertDeliveryRepository;
  let webhooks: AlertWebhookRepository;
  const retentionOf = (days: number) =>
    new Retention(commands, alerts, { deliveries, webhooks }, mongoCommandIdQueries(commands.collection), days, { now: () => NOW }, createLogger("warn"));

  before(async () => {
    client = await MongoClient.connect(await testStoreUri());
    const db = client.db(uniqueName("ret_"));
    commands = new CommandRepository(db);
    alerts = new AlertRepository(db);
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
    assert.equal(await retention.purge(), 231, "every old final command, over more than one batch");

    const left = (await commands.collection.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id).sort();
    assert.deepEqual(left, ["old-active", "old-timed-out", "recent"]);
    const alertsLeft = (await alerts.collection.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id);
    assert.deepEqual(alertsLeft, ["old-alerted:1:FAILED"], "an open alert stays");
    assert.equal(await retention.purge(), 0, "a second round finds nothing");
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

    assert.equal(await retentionOf(30).purge(), 1);
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
});
