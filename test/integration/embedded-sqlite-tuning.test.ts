import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { MongoClient, type Collection, type Db } from "mongodb";
import { ensureStoreBinaries } from "../../src/embedded/ferretdb-binary";
import { startEmbeddedStore, type EmbeddedStore, type EmbeddedStorePorts, type SupervisionEvent } from "../../src/embedded/ferretdb";
import { SqliteHelper } from "../../src/embedded/sqlite-helper";
import { idIndexName, verifyQueryPlans, VERSION_GUARD_MESSAGE } from "../../src/embedded/sqlite-tuning";
import { createLogger } from "../../src/logger";
import { CommandRepository } from "../../src/store/command-repository";
import { ferretdbPid } from "../kit/store";

const log = createLogger(process.env.LOG_LEVEL ?? "silent");
const DB = "tuning_test";

interface CommandDoc {
  _id: string;
  status: string;
  updatedAt: Date;
  v: number;
  winner?: number;
}

/** The embedded store on SQLite as the gateway runs it, tuned (its own data directory: it restarts FerretDB). */
describe("embedded store on SQLite: indexes, version guard, id queries, supervision", () => {
  let dataDir: string;
  let store: EmbeddedStore;
  let client: MongoClient;
  let db: Db;
  let ports: EmbeddedStorePorts;
  let helper: SqliteHelper;
  const file = () => path.join(dataDir, "ferretdb", `${DB}.sqlite`);
  const commands = (): Collection<CommandDoc> => db.collection<CommandDoc>("commands");

  before(
    async () => {
      helper = new SqliteHelper((await ensureStoreBinaries(log)).sqliteHelper);
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sqlite-tuning-test-"));
      store = await startEmbeddedStore({ dataDir, log });
      client = await new MongoClient(store.uri, { serverSelectionTimeoutMS: 10_000 }).connect();
      db = client.db(DB);
      // Written before the version existed: the tuning must give them v 0 before the guard would lock them.
      await db.collection<Omit<CommandDoc, "v">>("commands").insertMany([
        { _id: "old-1", status: "SUCCEEDED", updatedAt: new Date("2020-01-01T00:00:00Z") },
        { _id: "old-2", status: "QUEUED", updatedAt: new Date("2020-01-02T00:00:00Z") },
      ]);
      // As a gateway before the index filter left them: every index the repository asks for, and a unique one.
      await new CommandRepository(db).ensureIndexes();
      await commands().createIndex({ updatedAt: 1 }, { name: "test_unique_updated", unique: true });
      ports = (await store.tune(db, DB))!;
      assert.ok(ports, "the SQLite backend returns its store ports");
    },
    { timeout: 300_000 },
  );
  after(async () => {
    await client?.close();
    await store?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("keeps only unique indexes on commands: the tuning drops those an earlier start made, and the repository makes none", async () => {
    const names = async () => (await commands().listIndexes().toArray()).map((index) => String(index.name)).sort();
    assert.deepEqual(await names(), ["_id_", "test_unique_updated"]);
    await new CommandRepository(db).ensureIndexes(store.indexFilter);
    assert.deepEqual(await names(), ["_id_", "test_unique_updated"]);
    await commands().dropIndex("test_unique_updated");
  });

  it("gives stored commands without a version the version 0", async () => {
    assert.deepEqual(
      (await commands().find({ _id: { $in: ["old-1", "old-2"] } }).toArray()).map((doc) => [doc._id, doc.v]).sort(),
      [["old-1", 0], ["old-2", 0]],
    );
  });

  it("SQLite serves FerretDB's statements by _id from the gateway's index on every hot collection, and a lost index is noticed", async () => {
    const tables = await tableNames();
    for (const collection of ["commands", "devices", "alerts", "dispatch_leases", "rules", "rule_stats", "rule_firings"]) {
      assert.ok(tables.has(collection), `${collection} has a table`);
    }
    await verifyQueryPlans(helper, file(), tables);

    const devices = tables.get("devices")!;
    await helper.run(file(), [{ sql: `DROP INDEX "${idIndexName(devices)}"` }]);
    await assert.rejects(verifyQueryPlans(helper, file(), tables), new RegExp(`${devices} update by _id: SCAN ${devices}`));
    await store.tune(db, DB); // start-up recreates it
    await verifyQueryPlans(helper, file(), tables);
  });

  it("of 20 concurrent compare-and-sets from the same version exactly one wins, in every trial", async () => {
    for (let trial = 0; trial < 3; trial++) {
      const id = `race-${trial}`;
      await commands().insertOne({ _id: id, status: "QUEUED", updatedAt: new Date(), v: 0 });
      const outcomes = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          ports.versionedWrites.update(commands(), id, 0, { $set: { status: "SENT", winner: i, updatedAt: new Date() } }),
        ),
      );
      const winners = outcomes.filter((doc) => doc !== null);
      assert.equal(winners.length, 1, `trial ${trial}: ${winners.length} winners`);
      const stored = await commands().findOne({ _id: id });
      assert.equal(stored?.v, 1);
      assert.equal(stored?.winner, winners[0]!.winner, "the stored document is the winner's");
    }
  });

  it("refuses an update of a command that does not advance its version by one, and a stale version misses", async () => {
    await commands().insertOne({ _id: "guarded", status: "QUEUED", updatedAt: new Date(), v: 0 });
    await assert.rejects(commands().updateOne({ _id: "guarded" }, { $set: { status: "SENT" } }), new RegExp(VERSION_GUARD_MESSAGE));
    assert.ok(await ports.versionedWrites.update(commands(), "guarded", 0, { $set: { status: "SENT" } }));
    assert.equal(await ports.versionedWrites.update(commands(), "guarded", 0, { $set: { status: "DELIVERED" } }), null);
    assert.equal((await commands().findOne({ _id: "guarded" }))?.status, "SENT");
    // Deletes are not guarded (retention).
    assert.equal((await commands().deleteOne({ _id: "guarded" })).deletedCount, 1);
  });

  it("answers the command id queries from the index", async () => {
    const at = (day: number) => new Date(Date.UTC(2021, 0, day));
    await commands().insertMany([
      { _id: "q-queued", status: "QUEUED", updatedAt: at(1), v: 0 },
      { _id: "q-sent", status: "SENT", updatedAt: at(1), v: 0 },
      { _id: "q-done-early", status: "SUCCEEDED", updatedAt: at(2), v: 0 },
      { _id: "q-failed-early", status: "FAILED", updatedAt: at(3), v: 0 },
      { _id: "q-timed-out-early", status: "TIMED_OUT", updatedAt: at(3), v: 0 }, // not final: a late reply may still come
      { _id: "q-done-late", status: "SUCCEEDED", updatedAt: at(20), v: 0 },
    ]);
    const queued = await ports.commandIdQueries.idsWithStatus(["QUEUED", "SENT"], 100);
    assert.deepEqual(queued.filter((id) => id.startsWith("q-")).sort(), ["q-queued", "q-sent"]);
    assert.ok(queued.includes("old-2"));
    assert.equal((await ports.commandIdQueries.idsWithStatus(["QUEUED", "SENT"], 1)).length, 1);
    const final = await ports.commandIdQueries.finalIdsUpdatedBefore(at(10), 100);
    assert.deepEqual(final.sort(), ["old-1", "q-done-early", "q-failed-early"]);
  });

  it("restarts FerretDB on the same port when it is killed, and the driver carries on", async () => {
    const events: SupervisionEvent[] = [];
    store.onSupervision((event) => events.push(event));
    const pid = ferretdbPid(dataDir);
    process.kill(pid, "SIGKILL");
    // Operations during the outage fail or wait; once it is back, the same client works again.
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await commands().insertOne({ _id: "after-restart", status: "QUEUED", updatedAt: new Date(), v: 0 });
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    assert.deepEqual(events, [{ kind: "restarted", attempt: 1 }]);
    assert.equal(store.isRunning(), true);
    assert.notEqual(ferretdbPid(dataDir), pid);
    // The indexes and the guard are in the file: still there.
    await verifyQueryPlans(helper, file(), await tableNames());
    await assert.rejects(commands().updateOne({ _id: "after-restart" }, { $set: { status: "SENT" } }), new RegExp(VERSION_GUARD_MESSAGE));
  });

  async function tableNames(): Promise<Map<string, string>> {
    const rows = await helper.query(file(), "SELECT name, table_name FROM _ferretdb_collections");
    return new Map(rows.map(([name, table]) => [String(name), String(table)]));
  }
});
