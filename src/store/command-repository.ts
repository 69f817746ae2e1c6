import type { Collection, Db, Filter, UpdateFilter } from "mongodb";
import type { Command, CommandStatus } from "../commands/command";
import { flatFilter, insertUnique } from "./database";
import { findOneInScope } from "./find-in-scope";
import { ensureIndexes } from "./indexes";
import { mongoVersionedWrites, type VersionedWrites } from "./store-ports";
import { escapeJsonKeys, unescapeJsonKeys } from "./json-keys";
import { inSpan, SpanKind, type SpanOptions } from "../observability/tracing";

export type CommandDocument = Omit<Command, "id"> & { _id: string };

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

/** The commands collection: the durable queue and the only place a command's state changes. */
export class CommandRepository {
  readonly collection: Collection<CommandDocument>;

  constructor(
    db: Db,
    private readonly versioned: VersionedWrites = mongoVersionedWrites,
  ) {
    this.collection = db.collection<CommandDocument>("commands");
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.collection, [
      { key: { tenant: 1, createdAt: -1, _id: -1 }, name: "tenant_newest" },
      { key: { deviceId: 1, status: 1, createdAt: 1 }, name: "device_queue" },
      { key: { status: 1, updatedAt: 1 }, name: "status_updated" },
      { key: { "pendingAlert.kind": 1 }, name: "pending_alert" },
    ]);
  }

  /** Inserts a new command; `false` when a command with that id already exists (an idempotent resend). */
  async insert(command: Command): Promise<boolean> {
    return inSpan("store commands.insert", storeSpan("insert", command), () => insertUnique(this.collection, toDocument(command)));
  }

  /** Documents written before versions existed get `v: 0` (once; later starts find none). */
  async migrateVersions(): Promise<void> {
    await this.collection.updateMany({ v: { $exists: false } }, { $set: { v: 0 } });
  }

  async findById(id: string, scope: Filter<CommandDocument> = {}): Promise<Command | null> {
    const doc = await findOneInScope(this.collection, id, scope);
    return doc ? fromDocument(doc) : null;
  }

  /**
   * Stores the change from `base` to `next` (the fields named in `changed`, and the history entries
   * `next` has beyond `base`) as one compare-and-set on `base.v`. Returns the stored command, or null
   * when the stored version is no longer `base.v` (someone else changed it: re-read and re-evaluate).
   */
  async write(base: Command, next: Command, changed: ReadonlySet<keyof Command>): Promise<Command | null> {
    return inSpan("store commands.update", storeSpan("update", base, { "command.v": base.v, "command.status": next.status }), () => this.writeVersioned(base, next, changed));
  }

  private async writeVersioned(base: Command, next: Command, changed: ReadonlySet<keyof Command>): Promise<Command | null> {
    const set: Record<string, unknown> = {};
    const unset: Record<string, ""> = {};
    for (const field of changed) {
      if (next[field] === undefined) unset[field] = "";
      else set[field] = next[field];
    }
    Object.assign(set, jsonFields(set, escapeJsonKeys));
    const update: UpdateFilter<CommandDocument> = { $set: set as Partial<CommandDocument> };
    if (Object.keys(unset).length) update.$unset = unset as never;
    const appended = next.history.slice(base.history.length);
    if (appended.length) update.$push = { history: { $each: appended } } as never;
    const doc = await this.versioned.update(this.collection, base.id, base.v, update);
    return doc ? fromDocument(doc) : null;
  }

  /** Deletes one command by `_id` (retention); `false` when it was gone already. */
  async delete(id: string): Promise<boolean> {
    return (await this.collection.deleteOne({ _id: id })).deletedCount === 1;
  }

  /** Newest first; `scope` is the caller's ability as a filter, `after` the position of the last row seen. */
  async list(scope: Filter<CommandDocument>, query: CommandQuery, first: number, after?: CommandPosition): Promise<Command[]> {
    const conditions: Filter<CommandDocument>[] = [];
    if (query.deviceId !== undefined) conditions.push({ deviceId: query.deviceId });
    if (query.status?.length) conditions.push({ status: { $in: query.status } });
    if (query.type !== undefined) conditions.push({ type: query.type });
    if (query.source !== undefined) conditions.push({ source: query.source as Command["source"] });
    const createdAt = { ...(query.since && { $gte: query.since }), ...(query.until && { $lt: query.until }) };
    if (Object.keys(createdAt).length) conditions.push({ createdAt });
    if (after) {
      conditions.push({
        $or: [{ createdAt: { $lt: after.createdAt } }, { createdAt: after.createdAt, _id: { $lt: after.id } }],
      });
    }
    const docs = await this.collection
      .find(flatFilter(scope, ...conditions))
      .sort({ createdAt: -1, _id: -1 })
      .limit(first)
      .toArray();
    return docs.map(fromDocument);
  }

  async count(filter: Filter<CommandDocument> = {}): Promise<number> {
    return this.collection.countDocuments(filter);
  }
}

/** A span of our own around a store call, in the command's trace (CLIENT, database semantic conventions). */
function storeSpan(operation: string, command: Command, attributes: Record<string, string | number> = {}): SpanOptions {
  return {
    kind: SpanKind.CLIENT,
    parent: command.traceparent,
    attributes: { "db.system.name": "mongodb", "db.collection.name": "commands", "db.operation.name": operation, "command.id": command.id, ...attributes },
  };
}

function toDocument(command: Command): CommandDocument {
  const { id, ...rest } = command;
  return { _id: id, ...rest, ...jsonFields(rest, escapeJsonKeys) } as CommandDocument;
}

function fromDocument(doc: CommandDocument): Command {
  const { _id, ...rest } = doc;
  return { id: _id, ...rest, ...jsonFields(rest, unescapeJsonKeys) };
}

/** The fields that hold JSON from outside, converted; absent ones stay absent. */
function jsonFields(fields: Partial<Pick<Command, "payload" | "result">>, convert: (value: unknown) => unknown): Partial<Pick<Command, "payload" | "result">> {
  const converted: Partial<Pick<Command, "payload" | "result">> = {};
  if (fields.payload !== undefined) converted.payload = convert(fields.payload) as Command["payload"];
  if (fields.result !== undefined) converted.result = convert(fields.result) as Command["result"];
  return converted;
}
