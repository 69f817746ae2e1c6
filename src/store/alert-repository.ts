import type { Collection, Db, Filter } from "mongodb";
import type { Alert, AlertKind } from "../alerts/alert";
import { flatFilter, insertUnique, withId } from "./database";
import { ensureIndexes } from "./indexes";

type AlertDocument = Omit<Alert, "id"> & { _id: string };

export class AlertRepository {
  readonly collection: Collection<AlertDocument>;

  constructor(db: Db) {
    this.collection = db.collection<AlertDocument>("alerts");
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.collection, [
      { key: { tenant: 1, raisedAt: -1, _id: -1 }, name: "tenant_newest" },
      { key: { commandId: 1, resolvedAt: 1 }, name: "command_open" },
    ]);
  }

  /** `false` when this alert was raised before (by this or another replica). */
  async insert(alert: Alert): Promise<boolean> {
    const { id, ...rest } = alert;
    return insertUnique(this.collection, { _id: id, ...rest });
  }

  /** Resolves the command's open alerts (of the given kinds, or all); returns how many. */
  async resolveForCommand(commandId: string, at: Date, kinds?: AlertKind[]): Promise<number> {
    const filter: Filter<AlertDocument> = { commandId, resolvedAt: { $exists: false } };
    if (kinds) filter.kind = { $in: kinds };
    const result = await this.collection.updateMany(filter, { $set: { resolvedAt: at } });
    return result.modifiedCount;
  }

  /** Newest first; `after` is the position of the last row seen. */
  async list(scope: Filter<AlertDocument>, open: boolean | undefined, first: number, after?: { raisedAt: Date; id: string }): Promise<Alert[]> {
    const conditions: Filter<AlertDocument>[] = [];
    if (open === true) conditions.push({ resolvedAt: { $exists: false } });
    if (open === false) conditions.push({ resolvedAt: { $exists: true } });
    if (after) conditions.push({ $or: [{ raisedAt: { $lt: after.raisedAt } }, { raisedAt: after.raisedAt, _id: { $lt: after.id } }] });
    const docs = await this.collection.find(flatFilter(scope, ...conditions)).sort({ raisedAt: -1, _id: -1 }).limit(first).toArray();
    return docs.map(withId);
  }

  /** Deletes the alert if it is resolved (retention); point operations by `_id` only. */
  async deleteIfResolved(id: string): Promise<boolean> {
    const alert = await this.collection.findOne({ _id: id }, { projection: { resolvedAt: 1 } });
    return Boolean(alert?.resolvedAt) && (await this.collection.deleteOne({ _id: id })).deletedCount === 1;
  }

  async findById(id: string): Promise<Alert | null> {
    const doc = await this.collection.findOne({ _id: id });
    return doc ? withId(doc) : null;
  }

  /** Alerts raised since `since`, newest first, at most `limit`. */
  async findRaisedSince(since: Date, limit: number): Promise<Alert[]> {
    return (await this.collection.find({ raisedAt: { $gte: since } }).sort({ raisedAt: -1 }).limit(limit).toArray()).map(withId);
  }

  async findForCommand(commandId: string): Promise<Alert[]> {
    return (await this.collection.find({ commandId }).sort({ raisedAt: 1 }).toArray()).map(withId);
  }

  async count(filter: Filter<AlertDocument> = {}): Promise<number> {
    return this.collection.countDocuments(filter);
  }
}

