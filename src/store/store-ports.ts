import type { Collection, Document, Filter, UpdateFilter } from "mongodb";
import type { CommandStatus } from "../commands/command";
import { FINAL_STATUSES } from "../commands/state-machine";

/** Compare-and-set of one document by `_id` and version `v`; returns the document after the update, or null on a miss. */
export interface VersionedWrites {
  update<T extends Document & { _id: string; v: number }>(collection: Collection<T>, id: string, expectedVersion: number, update: UpdateFilter<T>): Promise<T | null>;
}

/** Id-only lookups that the store can answer without reading history (indexed). */
export interface CommandIdQueries {
  /** Ids of commands whose status is one of `statuses` (start-up rebuild, safety net). */
  idsWithStatus(statuses: readonly string[], limit: number): Promise<string[]>;
  /** Ids of commands in a final status whose `updatedAt` is before `before` (retention). */
  finalIdsUpdatedBefore(before: Date, limit: number): Promise<string[]>;
  /**
   * Ids of commands with an alert decided but not yet written (a crash in between). Optional, so a
   * store adapter written before it still compiles; without it the MongoDB query is used.
   */
  idsWithPendingAlert?(limit: number): Promise<string[]>;
}

/** One page of the commands list as the store's index answers it: the filters it can index, newest first. */
export interface CommandIndexQuery {
  tenant: string;
  /** Only commands of these sites / types (an operator's sites, an API key's types); absent: any. */
  sites?: readonly string[];
  types?: readonly string[];
  deviceId?: string;
  statuses?: readonly string[];
  type?: string;
  source?: string;
  /** createdAt >= since, createdAt < until. */
  since?: Date;
  until?: Date;
  /** Strictly after this position in newest-first order (createdAt desc, then _id desc). */
  after?: { createdAt: Date; id: string };
  limit: number;
}

/**
 * The commands list from an index, for a store that cannot sort or filter on its own without reading every
 * document (FerretDB v1 on SQLite). Optional: without it the MongoDB query is used (indexed by `tenant_newest`).
 */
export interface CommandListIndex {
  /** Positions of the matching commands, newest first (createdAt desc, `_id` desc), at most `limit`. */
  newest(query: CommandIndexQuery): Promise<Array<{ id: string; createdAt: Date }>>;
}

/** MongoDB: `{ _id, v }` is a point filter, and findOneAndUpdate is atomic. */
export const mongoVersionedWrites: VersionedWrites = {
  async update(collection, id, expectedVersion, update) {
    const filter = { _id: id, v: expectedVersion } as unknown as Filter<typeof collection extends Collection<infer D> ? D : never>;
    const versioned = { ...update, $set: { ...(update.$set ?? {}), v: expectedVersion + 1 } } as unknown as UpdateFilter<Document>;
    return (await (collection as unknown as Collection<Document>).findOneAndUpdate(filter as Filter<Document>, versioned, { returnDocument: "after" })) as never;
  },
};

/** MongoDB: served by the `status_…`, `final_updated` and `pending_alert` indexes of the commands collection. */
export function mongoCommandIdQueries<T extends Document & { _id: string; status: CommandStatus; updatedAt: Date }>(commands: Collection<T>): Required<CommandIdQueries> {
  const ids = async (filter: Filter<Document>, limit: number) =>
    (await (commands as unknown as Collection<Document>).find(filter, { projection: { _id: 1 } }).limit(limit).toArray()).map((doc) => String(doc._id));
  return {
    idsWithStatus: (statuses, limit) => ids({ status: { $in: [...statuses] } }, limit),
    finalIdsUpdatedBefore: (before, limit) => ids({ status: { $in: [...FINAL_STATUSES] }, updatedAt: { $lt: before } }, limit),
    idsWithPendingAlert: (limit) => ids({ pendingAlert: { $exists: true } }, limit),
  };
}

/** An adapter's lookups, with the MongoDB query for any it does not provide. */
export function withDefaultIdQueries(adapter: CommandIdQueries | undefined, defaults: Required<CommandIdQueries>): Required<CommandIdQueries> {
  if (!adapter) return defaults;
  return {
    idsWithStatus: (statuses, limit) => adapter.idsWithStatus(statuses, limit),
    finalIdsUpdatedBefore: (before, limit) => adapter.finalIdsUpdatedBefore(before, limit),
    idsWithPendingAlert: (limit) => (adapter.idsWithPendingAlert ? adapter.idsWithPendingAlert(limit) : defaults.idsWithPendingAlert(limit)),
  };
}
