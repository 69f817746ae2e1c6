import type { Collection, Db, Filter } from "mongodb";
import type { ApiKey } from "../apikeys/api-key";
import { withId } from "./database";
import { ensureIndexes } from "./indexes";

type ApiKeyDocument = Omit<ApiKey, "id"> & { _id: string };

/** API keys by id (for admins) and by hash (for authentication). */
export class ApiKeyRepository {
  readonly collection: Collection<ApiKeyDocument>;

  constructor(db: Db) {
    this.collection = db.collection<ApiKeyDocument>("api_keys");
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.collection, [
      { key: { hash: 1 }, name: "hash_unique", unique: true },
      { key: { tenant: 1, createdAt: -1 }, name: "tenant_newest" },
    ]);
  }

  async insert(key: ApiKey): Promise<void> {
    const { id, ...rest } = key;
    await this.collection.insertOne({ _id: id, ...rest });
  }

  async findByHash(hash: string): Promise<ApiKey | null> {
    const doc = await this.collection.findOne({ hash });
    return doc ? withId(doc) : null;
  }

  /** Newest first, within `scope` (the caller's ability as a filter). */
  async list(scope: Filter<ApiKeyDocument>, limit: number): Promise<ApiKey[]> {
    const docs = await this.collection.find(scope).sort({ createdAt: -1, _id: -1 }).limit(limit).toArray();
    return docs.map(withId);
  }

  /** Sets `revokedAt` once; returns the key as it is afterwards, or null when it is not in `scope`. */
  async revoke(id: string, scope: Filter<ApiKeyDocument>, at: Date): Promise<ApiKey | null> {
    await this.collection.updateOne({ $and: [{ _id: id }, scope, { revokedAt: { $exists: false } }] }, { $set: { revokedAt: at } });
    const doc = await this.collection.findOne({ $and: [{ _id: id }, scope] });
    return doc ? withId(doc) : null;
  }
}

