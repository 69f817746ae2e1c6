import type { Collection, Db, Filter } from "mongodb";
import type { AutomationRule, RuleStats, RuleWithStats } from "../automation/rule";
import { insertUnique } from "./database";
import { ensureIndexes } from "./indexes";

/** `when` is stored as JSON text: its `$` operators and dotted paths cannot be stored as field names. */
type RuleDocument = Omit<AutomationRule, "id" | "when"> & { _id: string; when: string };

/**
 * Kept apart from the rule so that the engine's writes never touch what an admin writes: FerretDB v1
 * rewrites whole documents, and a concurrent update could otherwise bring back a rule just disabled.
 */
type StatsDocument = RuleStats & { _id: string };

/**
 * The firings of one (rule, device), numbered: firing n+1 is inserted with a unique `_id` only after
 * firing n is a cooldown old. Of replicas racing for the same slot, the insert lets exactly one win,
 * on MongoDB and on FerretDB alike (FerretDB v1 does not make conditional updates atomic; see README).
 */
interface FiringDocument {
  _id: string;
  ruleId: string;
  deviceId: string;
  seq: number;
  firedAt: Date;
}

export type FiringClaim = { claimed: true } | { claimed: false; lastFiredAt: Date };

/** The automation rules, their counters and their cooldowns. */
export class RuleRepository {
  readonly collection: Collection<RuleDocument>;
  readonly stats: Collection<StatsDocument>;
  readonly firings: Collection<FiringDocument>;

  constructor(db: Db) {
    this.collection = db.collection<RuleDocument>("rules");
    this.stats = db.collection<StatsDocument>("rule_stats");
    this.firings = db.collection<FiringDocument>("rule_firings");
  }

  async ensureIndexes(): Promise<void> {
    await Promise.all([
      ensureIndexes(this.collection, [
        { key: { tenant: 1, createdAt: 1, _id: 1 }, name: "tenant_created" },
        { key: { tenant: 1, enabled: 1 }, name: "tenant_enabled" },
      ]),
      ensureIndexes(this.firings, [{ key: { ruleId: 1, deviceId: 1, seq: -1 }, name: "rule_device_seq" }]),
    ]);
  }

  async insert(rule: AutomationRule): Promise<void> {
    const { id, when, ...rest } = rule;
    await this.stats.insertOne({ _id: id, fireCount: 0 });
    await this.collection.insertOne({ _id: id, ...rest, when: JSON.stringify(when) });
  }

  async findById(id: string, scope: Filter<RuleDocument> = {}): Promise<AutomationRule | null> {
    const doc = await this.collection.findOne({ $and: [{ _id: id }, scope] });
    return doc ? fromDocument(doc) : null;
  }

  /** Oldest first, with their counters. */
  async list(scope: Filter<RuleDocument>): Promise<RuleWithStats[]> {
    const docs = await this.collection.find(scope).sort({ createdAt: 1, _id: 1 }).toArray();
    return this.withStats(docs.map(fromDocument));
  }

  async findEnabled(tenant: string): Promise<AutomationRule[]> {
    const docs = await this.collection.find({ tenant, enabled: true }).toArray();
    return docs.map(fromDocument);
  }

  async setEnabled(id: string, scope: Filter<RuleDocument>, enabled: boolean, now: Date): Promise<RuleWithStats | null> {
    const doc = await this.collection.findOneAndUpdate({ $and: [{ _id: id }, scope] }, { $set: { enabled, updatedAt: now } }, { returnDocument: "after" });
    return doc ? (await this.withStats([fromDocument(doc)]))[0]! : null;
  }

  /** Removes the rule, its counters and its cooldowns; `false` when there was none in scope. */
  async delete(id: string, scope: Filter<RuleDocument>): Promise<boolean> {
    const { deletedCount } = await this.collection.deleteOne({ $and: [{ _id: id }, scope] });
    if (deletedCount === 0) return false;
    await Promise.all([this.stats.deleteOne({ _id: id }), this.firings.deleteMany({ ruleId: id })]);
    return true;
  }

  /** Not atomic on FerretDB v1: callers serialise the updates of one rule. */
  async recordSent(id: string, at: Date): Promise<void> {
    await this.stats.updateOne({ _id: id }, { $inc: { fireCount: 1 }, $set: { lastFiredAt: at }, $unset: { lastError: "" } });
  }

  async recordError(id: string, message: string): Promise<void> {
    await this.stats.updateOne({ _id: id }, { $set: { lastError: message } });
  }

  /**
   * Takes the right to fire `ruleId` for `deviceId` now, if its last firing is at least `cooldownMs`
   * old (or there was none): inserts the next firing, which only one claimant can do.
   */
  async claimFiring(ruleId: string, deviceId: string, now: Date, cooldownMs: number): Promise<FiringClaim> {
    const [last] = await this.firings.find({ ruleId, deviceId }).sort({ seq: -1 }).limit(1).toArray();
    if (last && last.firedAt.getTime() + cooldownMs > now.getTime()) return { claimed: false, lastFiredAt: last.firedAt };
    const seq = (last?.seq ?? 0) + 1;
    if (!(await insertUnique(this.firings, { _id: `${ruleId}/${deviceId}/${seq}`, ruleId, deviceId, seq, firedAt: now }))) {
      return { claimed: false, lastFiredAt: now };
    }
    // Only the newest firing decides; older ones are history nobody reads.
    if (last) await this.firings.deleteMany({ ruleId, deviceId, seq: { $lt: seq } });
    return { claimed: true };
  }

  private async withStats(rules: AutomationRule[]): Promise<RuleWithStats[]> {
    const stats = await this.stats.find({ _id: { $in: rules.map((r) => r.id) } }).toArray();
    const byId = new Map(stats.map(({ _id, ...s }) => [_id, s]));
    return rules.map((rule) => ({ fireCount: 0, ...byId.get(rule.id), ...rule }));
  }
}

function fromDocument(doc: RuleDocument): AutomationRule {
  const { _id, when, ...rest } = doc;
  return { id: _id, ...rest, when: JSON.parse(when) as AutomationRule["when"] };
}
