import type { Collection, Db, Filter } from "mongodb";
import type { Device } from "../devices/device";
import { insertUnique, withId } from "./database";
import { findOneInScope } from "./find-in-scope";
import { ensureIndexes } from "./indexes";

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
    return doc ? withId(doc) : null;
  }

  /** Ordered by id; `after` is the last id seen. */
  async list(scope: Filter<DeviceDocument>, site: string | undefined, first: number, after?: string): Promise<Device[]> {
    const conditions: Filter<DeviceDocument>[] = [scope];
    if (site !== undefined) conditions.push({ site });
    if (after !== undefined) conditions.push({ _id: { $gt: after } });
    const docs = await this.collection
      .find({ $and: conditions })
      .sort({ _id: 1 })
      .limit(first)
      .toArray();
    return docs.map(withId);
  }

  /** Records presence; `false` for an id that is not registered. */
  async setPresence(id: string, online: boolean, at: Date): Promise<boolean> {
    const result = await this.collection.updateOne({ _id: id }, { $set: { online, lastSeenAt: at } });
    return result.matchedCount === 1;
  }

  async onlineAmong(ids: string[]): Promise<string[]> {
    const docs = await this.collection.find({ _id: { $in: ids }, online: true }, { projection: { _id: 1 } }).toArray();
    return docs.map((d) => d._id);
  }

  /** Every registered id, in every tenant (for the embedded broker's registry). */
  async allIds(): Promise<string[]> {
    const docs = await this.collection.find({}, { projection: { _id: 1 } }).toArray();
    return docs.map((d) => d._id);
  }

  async count(filter: Filter<DeviceDocument> = {}): Promise<number> {
    return this.collection.countDocuments(filter);
  }
}

