import type { Collection, Db, Filter, UpdateFilter } from "mongodb";
import type { Device } from "../devices/device";
import { flatFilter, insertUnique, withId } from "./database";
import { findOneInScope } from "./find-in-scope";
import { ensureIndexes } from "./indexes";
import { escapeJsonKey, escapeJsonKeys, unescapeJsonKeys } from "./json-keys";

type DeviceDocument = Omit<Device, "id"> & { _id: string };

export class DeviceRepository {
  readonly collection: Collection<DeviceDocument>;

  constructor(db: Db) {
    this.collection = db.collection<DeviceDocument>("devices");
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.collection, [
      { key: { tenant: 1, _id: 1 }, name: "tenant_id" },
      { key: { tenant: 1, site: 1, _id: 1 }, name: "tenant_site_id" },
    ]);
  }

  /** `false` when the id is already registered (in any tenant: ids are MQTT client ids). */
  async insert(device: Device): Promise<boolean> {
    const { id, ...rest } = device;
    return insertUnique(this.collection, { _id: id, ...rest });
  }

  async findById(id: string, scope: Filter<DeviceDocument> = {}): Promise<Device | null> {
    const doc = await findOneInScope(this.collection, id, scope);
    return doc ? fromDocument(doc) : null;
  }

  /** Ordered by id; `after` is the last id seen. */
  async list(scope: Filter<DeviceDocument>, site: string | undefined, first: number, after?: string): Promise<Device[]> {
    const conditions: Filter<DeviceDocument>[] = [];
    if (site !== undefined) conditions.push({ site });
    if (after !== undefined) conditions.push({ _id: { $gt: after } });
    const docs = await this.collection
      .find(flatFilter(scope, ...conditions))
      .sort({ _id: 1 })
      .limit(first)
      .toArray();
    return docs.map(fromDocument);
  }

  /** Records presence; returns the device as it was before, or null for an id that is not registered. */
  async setPresence(id: string, online: boolean, at: Date): Promise<Device | null> {
    const doc = await this.collection.findOneAndUpdate({ _id: id }, { $set: { online, lastSeenAt: at } }, { returnDocument: "before" });
    return doc ? fromDocument(doc) : null;
  }

  /**
   * Sets and removes keys of `reported`, key by key (so on MongoDB a concurrent change of another key
   * is kept). Keys and values are device JSON, escaped like payloads.
   */
  async updateReported(id: string, set: Record<string, unknown>, unset: string[], at: Date, { overOlderOnly }: { overOlderOnly: boolean }): Promise<boolean> {
    const path = (key: string) => `reported.${escapeJsonKey(key)}`;
    const update: UpdateFilter<DeviceDocument> = {
      $set: { stateUpdatedAt: at, ...Object.fromEntries(Object.entries(set).map(([key, value]) => [path(key), escapeJsonKeys(value)])) },
    };
    if (unset.length) update.$unset = Object.fromEntries(unset.map((key) => [path(key), ""]));
    // Only over an older state: of two replicas applying results, the later completion stands. A sole writer
    // has compared with the state it holds, so it writes by `_id` alone: a point write on any store.
    const filter: Filter<DeviceDocument> = overOlderOnly ? { _id: id, $or: [{ stateUpdatedAt: { $exists: false } }, { stateUpdatedAt: { $lte: at } }] } : { _id: id };
    const result = await this.collection.updateOne(filter, update);
    return result.matchedCount === 1;
  }

  /** Every device (the in-memory directory is loaded from it at start). */
  async all(): Promise<Device[]> {
    return (await this.collection.find({}).toArray()).map(withId);
  }

  async count(filter: Filter<DeviceDocument> = {}): Promise<number> {
    return this.collection.countDocuments(filter);
  }
}


function fromDocument(doc: DeviceDocument): Device {
  const device = withId(doc);
  return device.reported ? { ...device, reported: unescapeJsonKeys(device.reported) as Device["reported"] } : device;
}
