import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { MongoClient, type Db, type Filter } from "mongodb";
import { abilityOf, accessibleFilter } from "../../src/authz/ability";
import type { Principal } from "../../src/authz/principal";
import { COMMAND_STATUSES, type Command } from "../../src/commands/command";
import { ensureStoreBinaries } from "../../src/embedded/ferretdb-binary";
import { startEmbeddedStore, type EmbeddedStore, type EmbeddedStorePorts } from "../../src/embedded/ferretdb";
import { SqliteHelper } from "../../src/embedded/sqlite-helper";
import { newestIndexName, verifyQueryPlans } from "../../src/embedded/sqlite-tuning";
import { createLogger } from "../../src/logger";
import { CommandRepository, type CommandDocument, type CommandPosition, type CommandQuery } from "../../src/store/command-repository";
import type { CommandListIndex } from "../../src/store/store-ports";

const log = createLogger(process.env.LOG_LEVEL ?? "silent");
const DB = "command_list_test";
const SITES = ["north", "south", "east"];
const TYPES = ["valve.open", "valve.close", "device.reboot"];
const SOURCES = ["OPERATOR", "AUTOMATION", "API"] as const;
const BASE = Date.UTC(2026, 0, 1);

/**
 * The commands list on the embedded store answered from the SQLite index (CommandListIndex) must be the list the
 * MongoDB query gives on the same data: the same rows, in the same order, page after page, for every policy's scope
 * and filter. FerretDB answers the plain query with MongoDB's semantics (matching and sorting in Go), so it is the
 * reference here.
 */
describe("embedded store on SQLite: the commands list from the index", () => {
  let dataDir: string;
  let store: EmbeddedStore;
  let client: MongoClient;
  let db: Db;
  let ports: EmbeddedStorePorts;
  let plain: CommandRepository;
  let indexed: CommandRepository;
  let indexCalls = 0;
  let sqlite: SqliteHelper;
  const helper = () => sqlite;
  const file = () => path.join(dataDir, "ferretdb", `${DB}.sqlite`);

  before(
    async () => {
      sqlite = new SqliteHelper((await ensureStoreBinaries(log)).sqliteHelper);
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "command-list-test-"));
      store = await startEmbeddedStore({ dataDir, log });
      client = await new MongoClient(store.uri, { serverSelectionTimeoutMS: 10_000 }).connect();
      db = client.db(DB);
      ports = (await store.tune(db, DB))!;
      const counting: CommandListIndex = {
        newest: (query) => {
          indexCalls++;
          return ports.commandListIndex.newest(query);
        },
      };
      plain = new CommandRepository(db, ports.versionedWrites);
      indexed = new CommandRepository(db, ports.versionedWrites, counting);
      await plain.collection.insertMany(seed());
    },
    { timeout: 300_000 },
  );
  after(async () => {
    await client?.close();
    await store?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const user = (roles: Array<"admin" | "operator" | "viewer">, sites?: string[]): Principal => ({ kind: "user", id: "u", tenant: "t1", roles, sites });
  const scopes: Record<string, Principal> = {
    admin: user(["admin"]),
    "operator of two sites": user(["operator"], ["north", "east"]),
    "viewer of one site": user(["viewer"], ["south"]),
    "operator and viewer (an $or of rules)": user(["operator", "viewer"], ["north"]),
    "API key of two types": { kind: "apiKey", id: "k", tenant: "t1", commandTypes: ["valve.open", "device.reboot"] },
  };
  const queries: Record<string, CommandQuery> = {
    everything: {},
    "two statuses": { status: ["SUCCEEDED", "FAILED"] },
    "one device": { deviceId: "d-3" },
    "type and source": { type: "valve.open", source: "API" },
    "a time window": { since: new Date(BASE + 10_000), until: new Date(BASE + 30_000) },
    "all filters": { status: ["QUEUED", "SENT", "SUCCEEDED", "FAILED"], deviceId: "d-1", since: new Date(BASE), until: new Date(BASE + 45_000) },
    "nothing matches": { deviceId: "no-such-device" },
  };

  it("gives the same rows, order and pages as the MongoDB query, for every scope and filter", async () => {
    for (const [scopeName, principal] of Object.entries(scopes)) {
      const scope = accessibleFilter(abilityOf(principal), "read", "Command") as Filter<CommandDocument>;
      for (const [queryName, query] of Object.entries(queries)) {
        for (const pageSize of [4, 50]) {
          const what = `${scopeName}, ${queryName}, pages of ${pageSize}`;
          const expected = await walk(plain, scope, query, pageSize);
          const actual = await walk(indexed, scope, query, pageSize);
          assert.deepEqual(actual, expected, what);
          if (queryName !== "nothing matches") assert.ok(expected.flat().length > 0, `${what}: the data has rows for it`);
        }
      }
    }
    assert.ok(indexCalls > 0, "the list was answered through the index");
  });

  it("leaves out a command the index still lists but the documents no longer match, and refills the page", async () => {
    const scope = accessibleFilter(abilityOf(scopes.admin), "read", "Command") as Filter<CommandDocument>;
    const query: CommandQuery = { status: ["QUEUED"] };
    const [newest] = await plain.list(scope, query, 1);
    // Changed behind the index's back between its read and the document read: simulated by a scope the index cannot
    // take (the issuer), which only the document check applies.
    const narrowed = { ...scope, issuedBy: { $ne: newest!.issuedBy } } as Filter<CommandDocument>;
    assert.deepEqual(await ids(indexed.list(narrowed, query, 5)), await ids(plain.list(narrowed, query, 5)));
    assert.ok(!(await ids(indexed.list(narrowed, query, 5))).includes(newest!.id));
    assert.equal((await indexed.list(narrowed, query, 5)).length, 5, "the page is full");
    assert.ok((await plain.list(scope, query, 100)).filter((c) => c.issuedBy === newest!.issuedBy).length >= 5, "the index lists rows the check leaves out");
  });

  it("start-up notices when SQLite would not answer the list from the index", async () => {
    const tables = new Map(
      (await helper().query(file(), "SELECT name, table_name FROM _ferretdb_collections")).map(([name, table]) => [String(name), String(table)]),
    );
    await verifyQueryPlans(helper(), file(), tables);
    const commands = tables.get("commands")!;
    await helper().run(file(), [{ sql: `DROP INDEX "${newestIndexName(commands)}"` }]);
    await assert.rejects(verifyQueryPlans(helper(), file(), tables), /list: newest first/);
    await store.tune(db, DB);
    await verifyQueryPlans(helper(), file(), tables);
  });

});

async function ids(rows: Promise<Command[]>): Promise<string[]> {
  return (await rows).map((c) => c.id);
}

/** Every page, as the service asks for it (one row more than the page, the last row's position as the next cursor). */
async function walk(repository: CommandRepository, scope: Filter<CommandDocument>, query: CommandQuery, size: number): Promise<string[][]> {
  const pages: string[][] = [];
  let after: CommandPosition | undefined;
  for (;;) {
    const rows = await repository.list(scope, query, size + 1, after);
    const page = rows.slice(0, size);
    pages.push(page.map((c) => `${c.id}@${c.createdAt.toISOString()}`));
    if (rows.length <= size) return pages;
    const last = page[page.length - 1]!;
    after = { createdAt: last.createdAt, id: last.id };
  }
}

/** 150 commands of two tenants, fields drawn from a fixed pseudo-random sequence; createdAt repeats (ties broken by `_id`). */
function seed(): CommandDocument[] {
  let state = 12345;
  const pick = <T>(items: readonly T[]): T => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return items[Math.floor(state / 65536) % items.length]!; // the high bits: the low ones of an LCG repeat quickly
  };
  const docs: CommandDocument[] = [];
  for (let i = 0; i < 150; i++) {
    const at = new Date(BASE + Math.floor(i / 3) * 1000);
    docs.push({
      _id: `c-${((i * 37) % 150).toString(36)}-${i}`,
      v: 0,
      tenant: pick(["t1", "t1", "t1", "t2"]),
      site: pick(SITES),
      deviceId: pick(["d-0", "d-1", "d-2", "d-3"]),
      type: pick(TYPES),
      payload: {},
      status: pick(["QUEUED", "QUEUED", ...COMMAND_STATUSES]),
      source: pick(SOURCES),
      issuedBy: pick(["user-0", "user-1", "user-2"]),
      attempt: 1,
      timeoutSeconds: 30,
      createdAt: at,
      updatedAt: at,
      history: [],
    });
  }
  return docs;
}
