import type { Collection, Db, Filter, UpdateFilter } from "mongodb";
import type { Command, CommandEvent, CommandStatus } from "../commands/command";
import { TRANSITIONS, type CommandTransition } from "../commands/state-machine";
import { insertUnique } from "./database";
import { findOneInScope } from "./find-in-scope";
import { ensureIndexes } from "./indexes";
import { escapeJsonKeys, unescapeJsonKeys } from "./json-keys";

/** `v` counts the document's writes: the embedded store's version guard refuses a write that does not advance it by one. */
type CommandDocument = Omit<Command, "id"> & { _id: string; v?: number };
const nextVersion = { v: 1 } as const;

export interface CommandQuery {
  deviceId?: string;
  status?: CommandStatus[];
  type?: string;
  source?: string;
  since?: Date;
  until?: Date;
}

/** Position of a row in newest-first order; encoded into Relay cursors by the caller. */
export interface CommandPosition {
  createdAt: Date;
  id: string;
}

export interface TransitionChange {
  /** Extra fields to set with the new status, e.g. `sentAt`, `result`. */
  set?: Partial<Omit<Command, "id" | "status" | "history">>;
  unset?: Array<keyof Command>;
  inc?: Partial<Record<"attempt", number>>;
  event: Omit<CommandEvent, "status">;
  /** History entries recorded just before the transition's own (a step the store never saw). */
  precededBy?: CommandEvent[];
  /** Extra conditions the document must meet besides the allowed statuses. */
  where?: Filter<CommandDocument>;
}

/** The commands collection: the durable queue and the only place a command's state changes. */
export class CommandRepository {
  readonly collection: Collection<CommandDocument>;

  constructor(db: Db) {
    this.collection = db.collection<CommandDocument>("commands");
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.collection, [
      { key: { tenant: 1, createdAt: -1, _id: -1 }, name: "tenant_newest" },
      { key: { deviceId: 1, status: 1, createdAt: 1 }, name: "device_queue" },
      { key: { status: 1, deadline: 1 }, name: "status_deadline" },
      { key: { status: 1, expiresAt: 1 }, name: "status_expiry" },
      { key: { "pendingAlert.kind": 1 }, name: "pending_alert" },
    ]);
  }

  /** Inserts a new command; `false` when a command with that id already exists (an idempotent resend). */
  async insert(command: Command): Promise<boolean> {
    return insertUnique(this.collection, toDocument(command));
  }

  async findById(id: string, scope: Filter<CommandDocument> = {}): Promise<Command | null> {
    const doc = await findOneInScope(this.collection, id, scope);
    return doc ? fromDocument(doc) : null;
  }

  /**
   * Applies one state-machine transition as a single compare-and-set: the update matches only while
   * the command is in a status the transition allows, so concurrent writers cannot both win.
   * Returns the command after the change, or null when it was not in an allowed state.
   */
  async transition(id: string, transition: CommandTransition, change: TransitionChange, now: Date): Promise<Command | null> {
    const rule = TRANSITIONS[transition];
    const filter: Filter<CommandDocument> = { _id: id, status: { $in: [...rule.from] } };
    const update: UpdateFilter<CommandDocument> = {
      $set: { ...change.set, ...jsonFields(change.set ?? {}, escapeJsonKeys), status: rule.to, updatedAt: now },
      $push: { history: { $each: [...(change.precededBy ?? []), { ...change.event, status: rule.to }] } },
    };
    if (change.unset?.length) update.$unset = Object.fromEntries(change.unset.map((field) => [field, ""]));
    update.$inc = { ...change.inc, ...nextVersion };
    const doc = await this.collection.findOneAndUpdate(change.where ? { $and: [filter, change.where] } : filter, update, {
      returnDocument: "after",
    });
    return doc ? fromDocument(doc) : null;
  }

  /** Changes fields without changing the status (escalation, alert bookkeeping). */
  async update(id: string, where: Filter<CommandDocument>, update: UpdateFilter<CommandDocument>): Promise<Command | null> {
    const doc = await this.collection.findOneAndUpdate({ $and: [{ _id: id }, where] }, { ...update, $inc: { ...update.$inc, ...nextVersion } }, { returnDocument: "after" });
    return doc ? fromDocument(doc) : null;
  }

  /** Newest first; `scope` is the caller's ability as a filter, `after` the position of the last row seen. */
  async list(scope: Filter<CommandDocument>, query: CommandQuery, first: number, after?: CommandPosition): Promise<Command[]> {
    const conditions: Filter<CommandDocument>[] = [scope];
    if (query.deviceId !== undefined) conditions.push({ deviceId: query.deviceId });
    if (query.status?.length) conditions.push({ status: { $in: query.status } });
    if (query.type !== undefined) conditions.push({ type: query.type });
    if (query.source !== undefined) conditions.push({ source: query.source as Command["source"] });
    if (query.since) conditions.push({ createdAt: { $gte: query.since } });
    if (query.until) conditions.push({ createdAt: { $lt: query.until } });
    if (after) {
      conditions.push({
        $or: [{ createdAt: { $lt: after.createdAt } }, { createdAt: after.createdAt, _id: { $lt: after.id } }],
      });
    }
    const docs = await this.collection
      .find({ $and: conditions })
      .sort({ createdAt: -1, _id: -1 })
      .limit(first)
      .toArray();
    return docs.map(fromDocument);
  }

  /** The next command to publish to a device: QUEUED, not claimed by a live dispatcher, oldest first. */
  async claimNextForDevice(deviceId: string, owner: string, now: Date, leaseMs: number): Promise<Command | null> {
    const doc = await this.collection.findOneAndUpdate(
      {
        deviceId,
        status: "QUEUED",
        $or: [
          // Never handed to the broker for this attempt, and not expired.
          { claim: { $exists: false }, $or: [{ expiresAt: { $exists: false } }, { expiresAt: { $gt: now } }] },
          // A dispatcher took it and died before the broker acknowledged: take it over and publish again.
          { "claim.until": { $lt: now } },
          // This replica took it before a restart (a replica keeps its REPLICA_ID across restarts).
          { "claim.owner": owner },
        ],
      },
      { $set: { claim: { owner, until: new Date(now.getTime() + leaseMs) } }, $inc: nextVersion },
      { sort: { createdAt: 1 }, returnDocument: "after" },
    );
    return doc ? fromDocument(doc) : null;
  }

  /** SENT commands the device has not acknowledged, oldest first: published again when the device reconnects. */
  /** The devices' commands in one of `statuses`, oldest first (one device: a plain equality, which FerretDB pushes down). */
  async findForDevices(deviceIds: readonly string[], statuses: readonly CommandStatus[]): Promise<Command[]> {
    const device = deviceIds.length === 1 ? deviceIds[0]! : { $in: [...deviceIds] };
    const docs = await this.collection.find({ deviceId: device, status: { $in: [...statuses] } }).sort({ createdAt: 1 }).toArray();
    return docs.map(fromDocument);
  }

  async findUndelivered(deviceId: string): Promise<Command[]> {
    const docs = await this.collection.find({ deviceId, status: "SENT" }).sort({ createdAt: 1 }).toArray();
    return docs.map(fromDocument);
  }

  /** SENT or DELIVERED commands past their deadline, oldest deadline first. */
  async findOverdue(now: Date, limit: number): Promise<Command[]> {
    const docs = await this.collection
      .find({ status: { $in: ["SENT", "DELIVERED"] }, deadline: { $lte: now } })
      .sort({ deadline: 1 })
      .limit(limit)
      .toArray();
    return docs.map(fromDocument);
  }

  /** QUEUED commands past their expiry that no dispatcher has taken (a taken one may already be on its way). */
  async findExpired(now: Date, limit: number): Promise<Command[]> {
    const docs = await this.collection
      .find({ status: "QUEUED", expiresAt: { $lte: now }, claim: { $exists: false } })
      .sort({ expiresAt: 1 })
      .limit(limit)
      .toArray();
    return docs.map(fromDocument);
  }

  /** Commands whose alert was decided but not yet written (a crash in between). */
  async findWithPendingAlert(limit: number): Promise<Command[]> {
    return (await this.collection.find({ pendingAlert: { $exists: true } }).limit(limit).toArray()).map(fromDocument);
  }

  /** Devices with QUEUED commands that no live dispatcher holds: the sweeper makes sure they are worked on. */
  async deviceIdsWithPendingDispatch(now: Date): Promise<string[]> {
    return this.collection.distinct("deviceId", { status: "QUEUED", $or: [{ claim: { $exists: false } }, { "claim.until": { $lt: now } }] });
  }

  async count(filter: Filter<CommandDocument> = {}): Promise<number> {
    return this.collection.countDocuments(filter);
  }
}

function toDocument(command: Command): CommandDocument {
  const { id, ...rest } = command;
  return { _id: id, ...rest, ...jsonFields(rest, escapeJsonKeys), v: 0 } as CommandDocument;
}

function fromDocument(doc: CommandDocument): Command {
  // The version is the store's bookkeeping, not part of the domain's command.
  const { _id, v, ...rest } = doc;
  return { id: _id, ...rest, ...jsonFields(rest, unescapeJsonKeys) };
}

/** The fields that hold JSON from outside, converted; absent ones stay absent. */
function jsonFields(fields: Partial<Pick<Command, "payload" | "result">>, convert: (value: unknown) => unknown): Partial<Pick<Command, "payload" | "result">> {
  const converted: Partial<Pick<Command, "payload" | "result">> = {};
  if (fields.payload !== undefined) converted.payload = convert(fields.payload) as Command["payload"];
  if (fields.result !== undefined) converted.result = convert(fields.result) as Command["result"];
  return converted;
}
