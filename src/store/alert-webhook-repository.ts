import type { Collection, Db, Filter } from "mongodb";
import type { AlertWebhook } from "../alerts/webhooks/alert-webhook";
import { withId } from "./database";
import { ensureIndexes } from "./indexes";

type AlertWebhookDocument = Omit<AlertWebhook, "id"> & { _id: string };

/** What an admin sees of a webhook: everything but the secret, which never leaves the store again. */
export type AlertWebhookView = Omit<AlertWebhook, "secret">;

/**
 * Tenants' alert webhooks. Admin fields never change after creation, so the delivery worker's writes
 * (`lastDeliveredAt`, `failing`) cannot bring back anything stale when FerretDB rewrites the document.
 */
export class AlertWebhookRepository {
  readonly collection: Collection<AlertWebhookDocument>;

  constructor(db: Db) {
    this.collection = db.collection<AlertWebhookDocument>("alert_webhooks");
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.collection, [
      { key: { tenant: 1, createdAt: 1, _id: 1 }, name: "tenant_created" },
      { key: { failing: 1 }, name: "failing" },
    ]);
  }

  async insert(webhook: AlertWebhook): Promise<void> {
    const { id, ...rest } = webhook;
    await this.collection.insertOne({ _id: id, ...rest });
  }

  async findById(id: string): Promise<AlertWebhook | null> {
    const doc = await this.collection.findOne({ _id: id });
    return doc ? withId(doc) : null;
  }

  /** Every webhook of a tenant, with secrets (for deriving deliveries). */
  async forTenant(tenant: string): Promise<AlertWebhook[]> {
    return (await this.collection.find({ tenant }).toArray()).map(withId);
  }

  /** Oldest first, within `scope` (the caller's ability as a filter), without secrets. */
  async list(scope: Filter<AlertWebhookDocument>, limit: number): Promise<AlertWebhookView[]> {
    const docs = await this.collection.find(scope, { projection: { secret: 0 } }).sort({ createdAt: 1, _id: 1 }).limit(limit).toArray();
    return docs.map(withId);
  }

  async countForTenant(tenant: string): Promise<number> {
    return this.collection.countDocuments({ tenant });
  }

  /** `false` when there is no such webhook in `scope`. `deleteOne`'s count is exact on every store. */
  async delete(id: string, scope: Filter<AlertWebhookDocument>): Promise<boolean> {
    return (await this.collection.deleteOne({ $and: [{ _id: id }, scope] })).deletedCount === 1;
  }

  async markDelivered(id: string, at: Date): Promise<void> {
    await this.collection.updateOne({ _id: id }, { $set: { lastDeliveredAt: at, failing: false } });
  }

  async markFailing(id: string): Promise<void> {
    await this.collection.updateOne({ _id: id }, { $set: { failing: true } });
  }

  async countFailing(): Promise<number> {
    return this.collection.countDocuments({ failing: true });
  }
}
