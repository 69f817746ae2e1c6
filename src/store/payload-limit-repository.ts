import type { Collection, Db, Filter } from "mongodb";
import type { PayloadLimit } from "../payload-limits/payload-limit";
import { insertUnique } from "./database";
import { ensureIndexes } from "./indexes";

/** `schema` is stored as JSON text: its property names are the payload's, which may hold `.` or `$`. */
type PayloadLimitDocument = Omit<PayloadLimit, "id" | "schema"> & { _id: string; schema: string };

/** Payload limits, one document per (tenant, subject, site, command type): the id is derived from them. */
export class PayloadLimitRepository {
  readonly collection: Collection<PayloadLimitDocument>;

  constructor(db: Db) {
    this.collection = db.collection<PayloadLimitDocument>("payload_limits");
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.collection, [{ key: { tenant: 1 }, name: "tenant" }]);
  }

  /**
   * Stores the limit, replacing the one with its id. A whole-document replace by bare `_id` (no
   * read-modify-write that FerretDB v1 could interleave): of concurrent sets, the last one stands.
   */
  async replace(limit: PayloadLimit): Promise<void> {
    const doc = toDocument(limit);
    const { matchedCount } = await this.collection.replaceOne({ _id: doc._id }, doc);
    // None yet: insert it; if a concurrent set inserted it first, replace that one.
    if (matchedCount === 0 && !(await insertUnique(this.collection, doc))) await this.collection.replaceOne({ _id: doc._id }, doc);
  }

  /** `false` when there was none in `scope` (the caller's ability as a filter). */
  async delete(id: string, scope: Filter<PayloadLimitDocument>): Promise<boolean> {
    const { deletedCount } = await this.collection.deleteOne({ $and: [{ _id: id }, scope] });
    return deletedCount === 1;
  }

  /** Ordered by command type, subject and site. */
  async list(scope: Filter<PayloadLimitDocument>): Promise<PayloadLimit[]> {
    const docs = await this.collection.find(scope).toArray();
    return docs.map(fromDocument).sort((a, b) => order(a).localeCompare(order(b)));
  }

  async findByTenant(tenant: string): Promise<PayloadLimit[]> {
    return (await this.collection.find({ tenant }).toArray()).map(fromDocument);
  }
}

const order = (limit: PayloadLimit) => [limit.commandType, limit.subject, limit.site ?? ""].join("\u0000");

function toDocument(limit: PayloadLimit): PayloadLimitDocument {
  const { id, schema, ...rest } = limit;
  return { _id: id, ...rest, schema: JSON.stringify(schema) };
}

function fromDocument(doc: PayloadLimitDocument): PayloadLimit {
  const { _id, schema, ...rest } = doc;
  return { id: _id, ...rest, schema: JSON.parse(schema) as PayloadLimit["schema"] };
}
