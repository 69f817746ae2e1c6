import type { Db, IndexDescription } from "mongodb";
import { FINAL_STATUSES } from "../commands/state-machine";
import { FINISHED_FLEET_STATUSES } from "../fleet/fleet-command";
import type { Logger } from "../logger";
import type { SqliteHelper, SqlStatement, SqlValue } from "./sqlite-helper";

/**
 * FerretDB v1.24.2 on SQLite stores each collection as a table of one JSON column. Its SQL finds a document by
 * `_ferretdb_sjson->'$._id'`, but its own `_id` index is on another expression text, so SQLite never uses it and
 * every update, delete and find by `_id` scans the table (FERRETDB.md §1). v1.24.2 is the last v1 release: this
 * layout is frozen, and these are its exact expressions.
 */
const DOC = "_ferretdb_sjson";
const ID = `${DOC}->'$._id'`;
const STATUS = `${DOC}->>'$.status'`;
const UPDATED_AT = `${DOC}->>'$.updatedAt'`; // a date is stored as milliseconds since the epoch
const field = (name: string) => `${DOC}->>'$.${name}'`;
/** The list's order: `_id` as SQL text (binary order, as MongoDB compares strings), not the JSON form of ID. */
const ID_TEXT = field("_id");
const TENANT = field("tenant");
const CREATED_AT = field("createdAt");
const DEVICE_ID = field("deviceId");
export const VERSION_GUARD_MESSAGE = "stale write rejected by version guard";

/** Collections written per command or per event: each gets the `_id` index FerretDB's SQL can use. */
export const HOT_COLLECTIONS = [
  "commands",
  "devices",
  "alerts",
  "dispatch_leases",
  "rules",
  "rule_stats",
  "rule_firings",
  "fleet_commands",
  "fleet_targets",
  // Written per alert and attempt, and deleted by `_id` by retention.
  "alert_deliveries",
  "alert_delivery_attempts",
] as const;
/** Collections whose updates must each set `v` to the stored value + 1 (compare-and-set by `_id`). */
export const VERSIONED_COLLECTIONS = ["commands"] as const;

/**
 * The indexes FerretDB keeps on SQLite: only unique ones (they enforce uniqueness). FerretDB's SQL never uses an
 * index it created (their expression text differs from its queries', FERRETDB.md §1), so a non-unique one serves no
 * query and costs every write: each insert and each update (FerretDB rewrites the whole document) changes an entry
 * in it, a B-tree walk whose pages a connection has to read again after any other connection's write.
 */
export const sqliteKeepsIndex = (index: IndexDescription): boolean => index.unique === true;

/** Collections whose repository asks for sqliteKeepsIndex; the tuning drops what an earlier start created there. */
export const FILTERED_INDEX_COLLECTIONS = ["commands"] as const;

const quote = (identifier: string) => `"${identifier.replace(/"/g, '""')}"`;

interface SchemaObject {
  type: "index" | "trigger";
  name: string;
  /** Exactly as SQLite keeps it in sqlite_schema, so a changed definition is noticed and replaced. */
  sql: string;
}

/** The statements FerretDB runs by `_id` (internal/backends/sqlite/collection.go), for EXPLAIN QUERY PLAN. */
function ferretdbStatementsById(table: string): Array<{ what: string; sql: string; args: SqlValue[] }> {
  const t = quote(table);
  return [
    { what: "find by _id", sql: `SELECT  ${DOC} FROM ${t} WHERE ${ID} = ?`, args: ['"x"'] },
    { what: "update by _id", sql: `UPDATE ${t} SET ${DOC} = ? WHERE ${ID} = ?`, args: ["{}", '"x"'] },
    { what: "delete by _id", sql: `DELETE FROM ${t} WHERE ${ID} IN (?)`, args: ['"x"'] },
    { what: "delete by _ids", sql: `DELETE FROM ${t} WHERE ${ID} IN (?, ?, ?)`, args: ['"x"', '"y"', '"z"'] },
  ];
}

export const idIndexName = (table: string) => `${table}_gw_id`;
export const statusIndexName = (table: string) => `${table}_gw_status_updated`;
export const newestIndexName = (table: string) => `${table}_gw_tenant_newest`;
export const deviceNewestIndexName = (table: string) => `${table}_gw_tenant_device_newest`;
const guardName = (table: string) => `${table}_gw_version_guard`;

function idIndex(table: string): SchemaObject {
  return { type: "index", name: idIndexName(table), sql: `CREATE UNIQUE INDEX ${quote(idIndexName(table))} ON ${quote(table)} (${ID})` };
}

/** One index serves both id queries: status alone (a prefix), and final statuses by `updatedAt` (commands; fleet commands for retention). */
function statusIndex(table: string): SchemaObject {
  return { type: "index", name: statusIndexName(table), sql: `CREATE INDEX ${quote(statusIndexName(table))} ON ${quote(table)} (${STATUS}, ${UPDATED_AT})` };
}

/** The commands list: a tenant's newest first, and a device's newest first (the device page, the device filter). */
function listIndexes(table: string): SchemaObject[] {
  return [
    { type: "index", name: newestIndexName(table), sql: `CREATE INDEX ${quote(newestIndexName(table))} ON ${quote(table)} (${TENANT}, ${CREATED_AT}, ${ID_TEXT})` },
    {
      type: "index",
      name: deviceNewestIndexName(table),
      sql: `CREATE INDEX ${quote(deviceNewestIndexName(table))} ON ${quote(table)} (${TENANT}, ${DEVICE_ID}, ${CREATED_AT}, ${ID_TEXT})`,
    },
  ];
}

/**
 * FerretDB reads a document, applies the update in Go and writes the whole document back in a separate
 * transaction, so two writers that read the same version both "win" (FERRETDB.md §2). SQLite serialises writes
 * and the trigger sees the committed row: a write built from a stale read does not advance `v` by exactly one.
 */
function versionGuard(table: string): SchemaObject {
  return {
    type: "trigger",
    name: guardName(table),
    sql:
      `CREATE TRIGGER ${quote(guardName(table))} BEFORE UPDATE ON ${quote(table)} ` +
      `WHEN json_extract(NEW.${DOC}, '$.v') IS NOT json_extract(OLD.${DOC}, '$.v') + 1 ` +
      `BEGIN SELECT RAISE(ABORT, '${VERSION_GUARD_MESSAGE}'); END`,
  };
}

export const commandIdSql = {
  idsWithStatus: (table: string, statuses: number) =>
    `SELECT ${DOC}->>'$._id' FROM ${quote(table)} WHERE ${STATUS} IN (${placeholders(statuses)}) LIMIT ?`,
  finalIdsUpdatedBefore: (table: string) =>
    `SELECT ${DOC}->>'$._id' FROM ${quote(table)} WHERE ${STATUS} IN (${placeholders(FINAL_STATUSES.length)}) AND ${UPDATED_AT} < ? LIMIT ?`,
};

/** The shape of a commands-list statement: which filters it has (the values are bound separately). */
export interface CommandListShape {
  sites?: number;
  types?: number;
  deviceId?: boolean;
  statuses?: number;
  type?: boolean;
  source?: boolean;
  since?: boolean;
  until?: boolean;
  after?: boolean;
}

/**
 * Positions of a tenant's commands, newest first, from `…_gw_tenant_newest` (or `…_tenant_device_newest` with a
 * device): the other filters are checked on the rows the index walks, in SQLite, never a sort of the table.
 * Arguments in this order: tenant, sites, types, deviceId, statuses, type, source, since, until, after (createdAt,
 * id), limit.
 */
export function commandListSql(table: string, shape: CommandListShape): string {
  const where = [`${TENANT} = ?`];
  if (shape.sites) where.push(`${field("site")} IN (${placeholders(shape.sites)})`);
  if (shape.types) where.push(`${field("type")} IN (${placeholders(shape.types)})`);
  if (shape.deviceId) where.push(`${DEVICE_ID} = ?`);
  if (shape.statuses) where.push(`${STATUS} IN (${placeholders(shape.statuses)})`);
  if (shape.type) where.push(`${field("type")} = ?`);
  if (shape.source) where.push(`${field("source")} = ?`);
  if (shape.since) where.push(`${CREATED_AT} >= ?`);
  if (shape.until) where.push(`${CREATED_AT} < ?`);
  if (shape.after) where.push(`(${CREATED_AT}, ${ID_TEXT}) < (?, ?)`);
  return `SELECT ${ID_TEXT}, ${CREATED_AT} FROM ${quote(table)} WHERE ${where.join(" AND ")} ORDER BY ${CREATED_AT} DESC, ${ID_TEXT} DESC LIMIT ?`;
}

export const fleetIdSql = {
  finishedIdsUpdatedBefore: (table: string) =>
    `SELECT ${DOC}->>'$._id' FROM ${quote(table)} WHERE ${STATUS} IN (${placeholders(FINISHED_FLEET_STATUSES.length)}) AND ${UPDATED_AT} < ? LIMIT ?`,
};

const placeholders = (n: number) => Array.from({ length: n }, () => "?").join(", ");

export interface TunedTables {
  /** SQLite file of the database. */
  file: string;
  /** Collection name → table name. */
  tables: Map<string, string>;
}

/**
 * Sets up one database of the embedded store for speed and for compare-and-set: creates the hot collections,
 * gives each the `_id` index FerretDB's SQL can use, the commands (and fleet commands) the status index of their id
 * queries, the commands the tenant indexes of the commands list (CommandListIndex) and the version guard (after
 * giving every command without `v` the version 0), then checks with EXPLAIN QUERY PLAN that
 * SQLite uses the indexes for FerretDB's exact statements. Throws when it does not: every write would scan.
 */
export async function tuneSqliteDatabase(db: Db, file: string, helper: SqliteHelper, log: Logger): Promise<TunedTables> {
  await createMissingCollections(db, HOT_COLLECTIONS);
  await dropUnkeptIndexes(db, FILTERED_INDEX_COLLECTIONS, log);
  const tables = await tableNames(helper, file, HOT_COLLECTIONS);
  const commands = tables.get("commands")!;

  // Before the guard exists: a document without `v` could never be updated under it. Also catches documents an
  // older gateway wrote after a downgrade.
  const [[unversioned]] = await helper.query(file, `SELECT count(*) FROM ${quote(commands)} WHERE json_type(${DOC}, '$.v') IS NULL`);
  if (Number(unversioned) > 0) {
    await helper.run(file, [{ sql: `DROP TRIGGER IF EXISTS ${quote(guardName(commands))}` }]);
    const { modifiedCount } = await db.collection("commands").updateMany({ v: { $exists: false } }, { $set: { v: 0 } });
    log.info({ commands: modifiedCount }, "embedded store: gave stored commands without a version the version 0");
  }

  const wanted: SchemaObject[] = [...tables.values()].map(idIndex);
  wanted.push(statusIndex(commands), ...listIndexes(commands), statusIndex(tables.get("fleet_commands")!));
  for (const name of VERSIONED_COLLECTIONS) wanted.push(versionGuard(tables.get(name)!));
  const created = await ensureSchemaObjects(helper, file, wanted);
  if (created.length) log.info({ created }, "embedded store: indexes and triggers created");

  await verifyQueryPlans(helper, file, tables);
  return { file, tables };
}

/** Through FerretDB (dropIndexes), so its index metadata stays true. `_id_` is unique in FerretDB's listing. */
async function dropUnkeptIndexes(db: Db, names: readonly string[], log: Logger): Promise<void> {
  for (const name of names) {
    const collection = db.collection(name);
    const unkept = (await collection.listIndexes().toArray()).filter((index) => index.name !== "_id_" && !sqliteKeepsIndex(index as IndexDescription));
    for (const index of unkept) await collection.dropIndex(String(index.name));
    if (unkept.length) log.info({ collection: name, dropped: unkept.map((index) => index.name) }, "embedded store: dropped indexes no query of FerretDB on SQLite uses");
  }
}

async function createMissingCollections(db: Db, names: readonly string[]): Promise<void> {
  const existing = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
  for (const name of names) {
    if (existing.has(name)) continue;
    try {
      await db.createCollection(name);
    } catch (error) {
      if ((error as { code?: number }).code !== 48) throw error; // NamespaceExists: created meanwhile
    }
  }
}

async function tableNames(helper: SqliteHelper, file: string, collections: readonly string[]): Promise<Map<string, string>> {
  const rows = await helper.query(file, `SELECT name, table_name FROM _ferretdb_collections WHERE name IN (${placeholders(collections.length)})`, [...collections]);
  const tables = new Map(rows.map(([name, table]) => [String(name), String(table)]));
  const missing = collections.filter((name) => !tables.has(name));
  if (missing.length) throw new Error(`embedded store: no SQLite table for the collections ${missing.join(", ")} in ${file}`);
  return tables;
}

/** Creates what is missing and replaces what differs from the wanted definition; returns the names it (re)created. */
async function ensureSchemaObjects(helper: SqliteHelper, file: string, wanted: SchemaObject[]): Promise<string[]> {
  const rows = await helper.query(file, `SELECT name, sql FROM sqlite_schema WHERE type IN ('index', 'trigger') AND name LIKE '%\\_gw\\_%' ESCAPE '\\'`);
  const existing = new Map(rows.map(([name, sql]) => [String(name), String(sql)]));
  const statements: SqlStatement[] = [];
  const created: string[] = [];
  for (const object of wanted) {
    const current = existing.get(object.name);
    if (current === object.sql) continue;
    if (current !== undefined) statements.push({ sql: `DROP ${object.type.toUpperCase()} ${quote(object.name)}` });
    statements.push({ sql: object.sql });
    created.push(object.name);
  }
  if (statements.length) await helper.run(file, statements, { transaction: true });
  return created;
}

/** The commands-list statements start-up checks: the console's first page, a filtered and a later page, a device's. */
function listPlanChecks(table: string): Array<{ what: string; shape: CommandListShape; index: string }> {
  return [
    { what: "list: newest first", shape: {}, index: newestIndexName(table) },
    { what: "list: sites, statuses, type, source, time, after", shape: { sites: 2, statuses: 2, type: true, source: true, since: true, until: true, after: true }, index: newestIndexName(table) },
    { what: "list: an API key's types", shape: { types: 2, after: true }, index: newestIndexName(table) },
    { what: "list: one device", shape: { sites: 1, deviceId: true, after: true }, index: deviceNewestIndexName(table) },
  ];
}

/** Throws unless SQLite serves FerretDB's statements by `_id`, the command id queries and the list, from our indexes. */
export async function verifyQueryPlans(helper: SqliteHelper, file: string, tables: Map<string, string>): Promise<void> {
  const checks: Array<{ table: string; what: string; index: string; statement: SqlStatement; ordered?: boolean }> = [];
  for (const table of tables.values()) {
    for (const { what, sql, args } of ferretdbStatementsById(table)) checks.push({ table, what, index: idIndexName(table), statement: { sql, args } });
  }
  const commands = tables.get("commands")!;
  checks.push({
    table: commands,
    what: "ids with status",
    index: statusIndexName(commands),
    statement: { sql: commandIdSql.idsWithStatus(commands, 2), args: ["QUEUED", "SENT", 10] },
  });
  checks.push({
    table: commands,
    what: "final ids updated before",
    index: statusIndexName(commands),
    statement: { sql: commandIdSql.finalIdsUpdatedBefore(commands), args: [...FINAL_STATUSES, 0, 10] },
  });
  for (const { what, shape, index } of listPlanChecks(commands)) {
    const args = Array.from({ length: (commandListSql(commands, shape).match(/\?/g) ?? []).length }, (_, i) => (i === 0 ? "t" : 1));
    checks.push({ table: commands, what, index, statement: { sql: commandListSql(commands, shape), args }, ordered: true });
  }
  const fleets = tables.get("fleet_commands")!;
  checks.push({
    table: fleets,
    what: "finished fleet ids updated before",
    index: statusIndexName(fleets),
    statement: { sql: fleetIdSql.finishedIdsUpdatedBefore(fleets), args: [...FINISHED_FLEET_STATUSES, 0, 10] },
  });
  const results = await helper.run(
    file,
    checks.map(({ statement }) => ({ sql: `EXPLAIN QUERY PLAN ${statement.sql}`, args: statement.args })),
  );
  const failures: string[] = [];
  checks.forEach((check, i) => {
    const plan = results[i].rows.map((row) => String(row[3]));
    const usesIndex = plan.some((detail) => detail.startsWith(`SEARCH ${check.table} USING `) && detail.includes(`INDEX ${check.index} (`));
    // A list statement must also take its order from the index: a temporary B-tree is a sort of every match.
    const sorts = check.ordered === true && plan.some((detail) => detail.includes("TEMP B-TREE"));
    if (!usesIndex || sorts) failures.push(`${check.table} ${check.what}: ${plan.join("; ")}`);
  });
  if (failures.length) {
    throw new Error(`embedded store: SQLite does not use the gateway's indexes (every such operation would scan the table): ${failures.join(" | ")}`);
  }
}
