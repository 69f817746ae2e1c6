import type { Collection, Document, Filter, UpdateFilter } from "mongodb";
import { FINAL_STATUSES } from "../commands/state-machine";
import type { CommandIdQueries, CommandIndexQuery, CommandListIndex, VersionedWrites } from "../store/store-ports";
import type { SqliteHelper, SqlValue } from "./sqlite-helper";
import { commandIdSql, commandListSql, VERSION_GUARD_MESSAGE, VERSIONED_COLLECTIONS, type TunedTables } from "./sqlite-tuning";

/** The version guard's refusal, as FerretDB passes SQLite's error on (a server error whose message contains it). */
export const isVersionGuardRejection = (error: unknown): boolean => error instanceof Error && error.message.includes(VERSION_GUARD_MESSAGE);

/**
 * Compare-and-set on FerretDB/SQLite. SQLite pushes down only a filter that is exactly `{ _id }` (any other key
 * decodes the whole table in Go), and FerretDB's conditional updates are not atomic anyway; so the filter is the
 * bare `_id` and the version guard on the table does the comparing: the write must take `v` from the stored value
 * to that + 1, which it does only if the stored `v` is still `expectedVersion`. Its refusal is the miss (null).
 *
 * A collection without the guard gets the `{ _id, v }` filter, which is the same contract on MongoDB but neither
 * indexed nor atomic on FerretDB: guard it (VERSIONED_COLLECTIONS) before putting it on a hot path.
 */
export class GuardedVersionedWrites implements VersionedWrites {
  private readonly guarded = new Set<string>(VERSIONED_COLLECTIONS);

  async update<T extends Document & { _id: string; v: number }>(
    collection: Collection<T>,
    id: string,
    expectedVersion: number,
    update: UpdateFilter<T>,
  ): Promise<T | null> {
    const guarded = this.guarded.has(collection.collectionName);
    const filter = (guarded ? { _id: id } : { _id: id, v: expectedVersion }) as Filter<T>;
    const versioned = { ...update, $set: { ...update.$set, v: expectedVersion + 1 } } as UpdateFilter<T>;
    try {
      // One case passes unnoticed: FerretDB skips a write that would change nothing, so if another writer already
      // stored exactly this content at this version, it is returned as ours. Updates that append a timestamped
      // history entry never coincide like that.
      return (await collection.findOneAndUpdate(filter, versioned, { returnDocument: "after" })) as T | null;
    } catch (error) {
      if (guarded && isVersionGuardRejection(error)) return null;
      throw error;
    }
  }
}

/**
 * For a store the gateway did not start (MONGODB_URI): the `{ _id, v }` compare-and-set as on MongoDB, where a
 * version guard's refusal is a miss like any other. Such a store is atomic only if it is MongoDB or a FerretDB
 * whose tables someone gave the guard (FERRETDB.md §2); on MongoDB the refusal never happens.
 */
export function guardRefusalsAsMisses(writes: VersionedWrites): VersionedWrites {
  return {
    async update(collection, id, expectedVersion, update) {
      try {
        return await writes.update(collection, id, expectedVersion, update);
      } catch (error) {
        if (isVersionGuardRejection(error)) return null;
        throw error;
      }
    },
  };
}

/** The command id lookups as SQL over the index the tuning created (`status`, `updatedAt`), never a table scan. */
export class SqliteCommandIdQueries implements CommandIdQueries {
  private readonly table: string;

  constructor(
    private readonly helper: SqliteHelper,
    private readonly tuned: TunedTables,
  ) {
    this.table = tuned.tables.get("commands")!;
  }

  async idsWithStatus(statuses: readonly string[], limit: number): Promise<string[]> {
    if (statuses.length === 0 || limit <= 0) return [];
    return this.ids(commandIdSql.idsWithStatus(this.table, statuses.length), [...statuses, limit]);
  }

  async finalIdsUpdatedBefore(before: Date, limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    return this.ids(commandIdSql.finalIdsUpdatedBefore(this.table), [...FINAL_STATUSES, before.getTime(), limit]);
  }

  private async ids(sql: string, args: Array<string | number>): Promise<string[]> {
    return (await this.helper.query(this.tuned.file, sql, args)).map(([id]) => String(id));
  }
}

/**
 * The commands list's order and indexable filters as SQL over the tenant indexes the tuning created: SQLite walks
 * the index newest first and stops at the limit, where FerretDB would decode and sort every command in Go.
 */
export class SqliteCommandListIndex implements CommandListIndex {
  private readonly table: string;

  constructor(
    private readonly helper: SqliteHelper,
    private readonly tuned: TunedTables,
  ) {
    this.table = tuned.tables.get("commands")!;
  }

  async newest(query: CommandIndexQuery): Promise<Array<{ id: string; createdAt: Date }>> {
    // An empty list matches nothing (as `$in: []` does), and the SQL `IN ()` could not say so.
    if (query.limit <= 0 || query.sites?.length === 0 || query.types?.length === 0) return [];
    const args: SqlValue[] = [query.tenant, ...(query.sites ?? []), ...(query.types ?? [])];
    if (query.deviceId !== undefined) args.push(query.deviceId);
    args.push(...(query.statuses ?? []));
    if (query.type !== undefined) args.push(query.type);
    if (query.source !== undefined) args.push(query.source);
    if (query.since) args.push(query.since.getTime());
    if (query.until) args.push(query.until.getTime());
    if (query.after) args.push(query.after.createdAt.getTime(), query.after.id);
    args.push(query.limit);
    const sql = commandListSql(this.table, {
      sites: query.sites?.length,
      types: query.types?.length,
      deviceId: query.deviceId !== undefined,
      statuses: query.statuses?.length,
      type: query.type !== undefined,
      source: query.source !== undefined,
      since: query.since !== undefined,
      until: query.until !== undefined,
      after: query.after !== undefined,
    });
    const rows = await this.helper.query(this.tuned.file, sql, args);
    return rows.map(([id, createdAt]) => ({ id: String(id), createdAt: new Date(Number(createdAt)) }));
  }
}
