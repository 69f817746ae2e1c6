import type { Collection, Document, Filter, IndexDescription, UpdateFilter } from "mongodb";
import type { CommandStatus } from "../commands/command";
import { FINAL_STATUSES } from "../commands/state-machine";
import { FINISHED_FLEET_STATUSES } from "../fleet/fleet-command";

/** Compare-and-set of one document by `_id` and version `v`; returns the document after the update, or null on a miss. */
export interface VersionedWrites {
  update<T extends Document & { _id: string; v: number }>(collection: Collection<T>, id: string, expectedVersion: number, update: UpdateFilter<T>): Promise<T | null>;
}

/**
 * Which of the indexes a repository wants the store should maintain. Only a unique index changes what a store
 * does; the others only serve queries, so a store that never uses them for a query may leave them out (each costs
 * every write of the collection).
 */
export type IndexFilter = (index: IndexDescription) => boolean;

/** MongoDB: every index serves its queries. */
export const allIndexes: IndexFilter = () => true;

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

/** Id-only lookups of fleet commands, indexed like the commands' (retention). */
export interface FleetIdQueries {
  /** Ids of finished fleet commands (COMPLETED, ABORTED, CANCELED) whose `updatedAt` is before `before`. */
  finishedIdsUpdatedBefore(before: Date, limit: number): Promise<string[]>;
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

/** MongoDB: served by the `finished_updated` index of the fleet commands collection. */
export function mongoFleetIdQueries<T extends Document & { _id: string }>(fleets: Collection<T>): FleetIdQueries {
  return {
    finishedIdsUpdatedBefore: async (before, limit) =>
      (await (fleets as unknown as Collection<Document>).find({ status: { $in: [...FINISHED_FLEET_STATUSES] }, updatedAt: { $lt: before } }, { projection: { _id: 1 } }).limit(limit).toArray()).map((doc) =>
        String(doc._id),
      ),
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
