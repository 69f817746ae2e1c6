import type { Collection, Db } from "mongodb";
import type { DispatchLeases } from "../commands/dispatch-leases";
import { insertUnique } from "./database";

interface LeaseDocument {
  _id: string;
  owner: string;
  until: Date;
}

/**
 * Leases that give one replica a device's dispatch at a time. They live apart from the device
 * documents, so a lease write never races a presence write on one document, and a lease is taken by
 * an insert on its unique `_id`, the one write every MongoDB-wire store makes exclusive.
 */
export class DispatchLeaseRepository implements DispatchLeases {
  readonly collection: Collection<LeaseDocument>;
  readonly alwaysGranted = false;

  /** `collection`: another set of leases by the same rules (fleet commands: `fleet_leases`). */
  constructor(db: Db, collection = "dispatch_leases") {
    this.collection = db.collection<LeaseDocument>(collection);
  }

  /**
   * Takes the device's lease, or extends it when `owner` holds it already; `false` when another owner
   * does. `held`: the caller believes it holds the lease, so the extension is tried first; otherwise
   * the insert is (one write for a device nobody holds).
   */
  async acquire(deviceId: string, owner: string, now: Date, leaseMs: number, held: boolean): Promise<boolean> {
    const until = new Date(now.getTime() + leaseMs);
    const extend = async () => (await this.collection.updateOne({ _id: deviceId, owner }, { $set: { until } })).matchedCount === 1;
    if (held && (await extend())) return true;
    if (await insertUnique(this.collection, { _id: deviceId, owner, until })) return true;
    // Its own lease from before a restart (a replica keeps its REPLICA_ID), unless that was just tried.
    if (!held && (await extend())) return true;
    // Another owner's lease that ran out (its replica died) no longer counts.
    await this.collection.deleteOne({ _id: deviceId, until: { $lt: now } });
    return insertUnique(this.collection, { _id: deviceId, owner, until });
  }

  async release(deviceId: string, owner: string): Promise<void> {
    await this.collection.deleteOne({ _id: deviceId, owner });
  }
}
