import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MongoClient } from "mongodb";
import type { Alert } from "../../src/alerts/alert";
import type { Command, CommandStatus } from "../../src/commands/command";
import { createLogger } from "../../src/logger";
import { Retention } from "../../src/retention/retention";
import { AlertRepository } from "../../src/store/alert-repository";
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

/** RETENTION_DAYS (CONTRACT §6.5): final commands older than the period go, with their resolved alerts; nothing else does. */
describe("retention", () => {
  let client: MongoClient;
  let commands: CommandRepository;
  let alerts: AlertRepository;

  before(async () => {
    client = await MongoClient.connect(await testStoreUri());
    const db = client.db(uniqueName("ret_"));
    commands = new CommandRepository(db);
    alerts = new AlertRepository(db);
  });
  after(async () => client.close());

  it("deletes final commands older than the period and their resolved alerts, in batches; keeps the rest", async () => {
    const old = Array.from({ length: 230 }, (_, i) => command(`old-${i}`, "SUCCEEDED", daysAgo(31)));
    const oldWithAlerts = command("old-alerted", "SUCCEEDED", daysAgo(31), ["QUEUED", "SENT", "TIMED_OUT", "SUCCEEDED"]);
    const keep = [command("recent", "SUCCEEDED", daysAgo(29)), command("old-active", "SENT", daysAgo(31)), command("old-timed-out", "TIMED_OUT", daysAgo(31))];
    for (const c of [...old, oldWithAlerts, ...keep]) assert.ok(await commands.insert(c));
    await alerts.insert(alert("old-alerted:1:TIMED_OUT", "old-alerted", true));
    await alerts.insert(alert("old-alerted:1:FAILED", "old-alerted", false));

    const retention = new Retention(commands, alerts, mongoCommandIdQueries(commands.collection), 30, { now: () => NOW }, createLogger("warn"));
    assert.equal(await retention.purge(), 231, "every old final command, over more than one batch");

    const left = (await commands.collection.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id).sort();
    assert.deepEqual(left, ["old-active", "old-timed-out", "recent"]);
    const alertsLeft = (await alerts.collection.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id);
    assert.deepEqual(alertsLeft, ["old-alerted:1:FAILED"], "an open alert stays");
    assert.equal(await retention.purge(), 0, "a second round finds nothing");
  });

  it("RETENTION_DAYS=0 keeps everything", async () => {
    await commands.insert(command("ancient", "SUCCEEDED", daysAgo(3650)));
    const retention = new Retention(commands, alerts, mongoCommandIdQueries(commands.collection), 0, { now: () => NOW }, createLogger("warn"));
    retention.start();
    await retention.stop();
    assert.ok(await commands.findById("ancient"));
  });
});
