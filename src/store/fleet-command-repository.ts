import type { Collection, Db, Filter } from "mongodb";
import type { FleetCommand, FleetCommandStatus, TargetChunk } from "../fleet/fleet-command";
import { flatFilter, insertUnique } from "./database";
import { findOneInScope } from "./find-in-scope";
import { ensureIndexes } from "./indexes";
import { escapeJsonKeys, unescapeJsonKeys } from "./json-keys";
import { mongoVersionedWrites, type VersionedWrites } from "./store-ports";

export type FleetCommandDocument = Omit<FleetCommand, "id"> & { _id: string };
type TargetChunkDocument = TargetChunk & { _id: string; fleetCommandId: string };

export interface FleetCommandPosition {
  createdAt: Date;
  id: string;
}

/**
 * Fleet commands and their resolved targets. A fleet command is one document changed by
 * compare-and-set on `v`; its device list is kept in chunk documents named `<fleet id>/<n>`, read by
 * `_id` only, so a large fleet neither bloats the document the driver rewrites nor needs a query.
 */
export class FleetCommandRepository {
  readonly collection: Collection<FleetCommandDocument>;
  private readonly chunks: Collection<TargetChunkDocument>;

  constructor(
    db: Db,
    private readonly versioned: VersionedWrites = mongoVersionedWrites,
  ) {
    this.collection = db.collection<FleetCommandDocument>("fleet_commands");
    this.chunks = db.collection<TargetChunkDocument>("fleet_targets");
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.collection, [
      { key: { tenant: 1, createdAt: -1, _id: -1 }, name: "tenant_newest" },
      { key: { status: 1 }, name: "status" },
      { key: { status: 1, updatedAt: 1 }, name: "finished_updated" },
    ]);
  }

  /** `false` when one with that id exists (an idempotent resend). */
  async insert(fleet: FleetCommand): Promise<boolean> {
    return insertUnique(this.collection, toDocument(fleet));
  }

  async findById(id: string, scope: Filter<FleetCommandDocument> = {}): Promise<FleetCommand | null> {
    const doc = await findOneInScope(this.collection, id, scope);
    return doc ? fromDocument(doc) : null;
  }

  /** Compare-and-set on `base.v`; the stored fleet command, or null when someone else changed it first. */
  async write(base: FleetCommand, set: Partial<Omit<FleetCommand, "id" | "v">>): Promise<FleetCommand | null> {
    const fields: Record<string, unknown> = { ...set, updatedAt: new Date() };
    if (set.payload !== undefined) fields.payload = escapeJsonKeys(set.payload);
    const doc = await this.versioned.update(this.collection, base.id, base.v, { $set: fields as Partial<FleetCommandDocument> });
    return doc ? fromDocument(doc) : null;
  }

  /** The ones not finished: read once at start (a small collection; one query, not per change). */
  async unfinished(): Promise<FleetCommand[]> {
    const statuses: FleetCommandStatus[] = ["SCHEDULED", "RUNNING", "PAUSED"];
    return (await this.collection.find({ status: { $in: statuses } }).toArray()).map(fromDocument);
  }

  /** Newest first, within `scope`. */
  async list(scope: Filter<FleetCommandDocument>, first: number, after?: FleetCommandPosition): Promise<FleetCommand[]> {
    const page: Filter<FleetCommandDocument> = after
      ? { $or: [{ createdAt: { $lt: after.createdAt } }, { createdAt: after.createdAt, _id: { $lt: after.id } }] }
      : {};
    const docs = await this.collection.find(flatFilter(scope, page)).sort({ createdAt: -1, _id: -1 }).limit(first).toArray();
    return docs.map(fromDocument);
  }

  /** Stores the resolved target; a chunk already there (a repeated start) is replaced by the same content. */
  async saveTargets(fleetCommandId: string, chunks: TargetChunk[]): Promise<void> {
    await Promise.all(
      chunks.map(async (chunk, n) => {
        const doc: TargetChunkDocument = { _id: chunkId(fleetCommandId, n), fleetCommandId, ...chunk };
        if (!(await insertUnique(this.chunks, doc))) await this.chunks.replaceOne({ _id: doc._id }, doc);
      }),
    );
  }

  /** Deletes the target chunks, then the fleet command (retention): point deletes by `_id`. */
  async delete(fleet: Pick<FleetCommand, "id" | "targetChunks">): Promise<boolean> {
    for (let n = 0; n < fleet.targetChunks; n++) await this.chunks.deleteOne({ _id: chunkId(fleet.id, n) });
    return (await this.collection.deleteOne({ _id: fleet.id })).deletedCount === 1;
  }

  /** The resolved target, chunk by chunk, by `_id`. */
  async targets(fleetCommandId: string, count: number): Promise<TargetChunk[]> {
    const docs = await Promise.all(Array.from({ length: count }, (_, n) => this.chunks.findOne({ _id: chunkId(fleetCommandId, n) })));
    return docs.map((doc) => ({ deviceIds: doc?.deviceIds ?? [], skipped: doc?.skipped ?? [] }));
  }
}

const chunkId = (fleetCommandId: string, n: number) => `${fleetCommandId}/${n}`;

function toDocument(fleet: FleetCommand): FleetCommandDocument {
  const { id, ...rest } = fleet;
  return { _id: id, ...rest, payload: escapeJsonKeys(rest.payload) as FleetCommand["payload"] };
}

function fromDocument(doc: FleetCommandDocument): FleetCommand {
  const { _id, ...rest } = doc;
  return { id: _id, ...rest, payload: unescapeJsonKeys(rest.payload) as FleetCommand["payload"] };
}
