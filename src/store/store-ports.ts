import type { Collection, Document, Filter, UpdateFilter } from "mongodb";
import type { CommandStatus } from "../commands/command";
import { FINAL_STATUSES } from "../commands/state-machine";
import { FINISHED_FLEET_STATUSES } from "../fleet/fleet-command";

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
