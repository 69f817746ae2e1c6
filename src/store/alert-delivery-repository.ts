import type { Collection, Db } from "mongodb";
import type { AlertDelivery } from "../alerts/webhooks/alert-webhook";
import { insertUnique, withId } from "./database";
import { ensureIndexes } from "./indexes";

type AlertDeliveryDocument = Omit<AlertDelivery, "id"> & { _id: string };

/**
 * Attempt n of a delivery, taken by inserting `${deliveryId}#${n}`: of replicas racing for the same
 * attempt exactly one insert succeeds, on MongoDB and on FerretDB v1 alike (whose conditional updates
 * are not atomic, so a compare-and-set on the delivery could let two replicas both post).
 */
interface AttemptClaimDocument {
  _id: string;
  deliveryId: string;
  webhookId: string;
  attempt: number;
  replicaId: string;
  claimedAt: Date;
}

export type DeliveryChanges = Partial<Omit<AlertDelivery, "id" | "tenant" | "alertId" | "webhookId" | "body" | "createdAt">>;

/** Alert deliveries to webhooks and the claims of their attempts. */
export class AlertDeliveryRepository {
  readonly collection: Collection<AlertDeliveryDocument>;
  readonly claims: Collection<AttemptClaimDocument>;

  constructor(db: Db) {
    this.collection = db.collection<AlertDeliveryDocument>("alert_deliveries");
    this.claims = db.collection<AttemptClaimDocument>("alert_delivery_attempts");
  }

  async ensureIndexes(): Promise<void> {
    await Promise.all([
      ensureIndexes(this.collection, [
        { key: { status: 1, nextAttemptAt: 1 }, name: "status_due" },
        { key: { alertId: 1 }, name: "alert" },
        { key: { webhookId: 1 }, name: "webhook" },
      ]),
      ensureIndexes(this.claims, [
        { key: { deliveryId: 1 }, name: "delivery" },
        { key: { webhookId: 1 }, name: "webhook" },
      ]),
    ]);
  }

  /** `false` when the delivery exists already (derived before, by this or another replica). */
  async insert(delivery: AlertDelivery): Promise<boolean> {
    const { id, ...rest } = delivery;
    return insertUnique(this.collection, { _id: id, ...rest });
  }

  async findById(id: string): Promise<AlertDelivery | null> {
    const doc = await this.collection.findOne({ _id: id });
    return doc ? withId(doc) : null;
  }

  /** Ids of the deliveries that exist for these alerts. */
  async idsForAlerts(alertIds: string[]): Promise<Set<string>> {
    if (alertIds.length === 0) return new Set();
    const docs = await this.collection.find({ alertId: { $in: alertIds } }, { projection: { _id: 1 } }).toArray();
    return new Set(docs.map((doc) => doc._id));
  }

  /** PENDING deliveries due by `before` (all of them with no bound), soonest first, at most `limit`. */
  async findPending(limit: number, before?: Date): Promise<AlertDelivery[]> {
    const filter = before ? { status: "PENDING" as const, nextAttemptAt: { $lte: before } } : { status: "PENDING" as const };
    return (await this.collection.find(filter).sort({ nextAttemptAt: 1 }).limit(limit).toArray()).map(withId);
  }

  /** Written only by the replica holding the delivery's current attempt. */
  async update(id: string, changes: DeliveryChanges): Promise<void> {
    await this.collection.updateOne({ _id: id }, { $set: changes });
  }

  /** `true` when this replica now owns attempt `attempt` of the delivery. */
  async claimAttempt(deliveryId: string, webhookId: string, attempt: number, replicaId: string, at: Date): Promise<boolean> {
    return insertUnique(this.claims, { _id: `${deliveryId}#${attempt}`, deliveryId, webhookId, attempt, replicaId, claimedAt: at });
  }

  /** When attempt `attempt` was claimed, or null if nobody has. */
  async claimedAt(deliveryId: string, attempt: number): Promise<Date | null> {
    return (await this.claims.findOne({ _id: `${deliveryId}#${attempt}` }))?.claimedAt ?? null;
  }

  /** Once a delivery has ended its claims are no longer needed (a late claimant re-reads the delivery). */
  async dropClaims(deliveryId: string): Promise<void> {
    await this.claims.deleteMany({ deliveryId });
  }

  /**
   * Deletes a delivery that has ended (DELIVERED or FAILED) and the claims of its attempts, claims first;
   * `false` when it does not exist or is still PENDING. Point operations by `_id` only (retention): the
   * claims' ids follow from the attempts, one more for a claim whose attempt a crash left unrecorded.
   */
  async deleteEnded(id: string): Promise<boolean> {
    const delivery = await this.collection.findOne({ _id: id });
    if (!delivery || delivery.status === "PENDING") return false;
    for (let attempt = 1; attempt <= delivery.attempts + 1; attempt++) await this.claims.deleteOne({ _id: `${id}#${attempt}` });
    return (await this.collection.deleteOne({ _id: id })).deletedCount === 1;
  }

  /** A deleted webhook takes its deliveries along. */
  async deleteForWebhook(webhookId: string): Promise<void> {
    await this.collection.deleteMany({ webhookId });
    await this.claims.deleteMany({ webhookId });
  }
}
