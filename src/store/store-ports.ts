import type { Collection, Document, UpdateFilter } from "mongodb";
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
}
