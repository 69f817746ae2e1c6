import { guard } from "@ucast/mongo2js";
import type { Collection, Db, Filter, UpdateFilter } from "mongodb";
import type { Command, CommandStatus } from "../commands/command";
import { flatFilter } from "./database";
import { GroupedInserts } from "./grouped-inserts";
import { findOneInScope } from "./find-in-scope";
import { ensureIndexes } from "./indexes";
import { allIndexes, mongoVersionedWrites, type CommandIndexQuery, type CommandListIndex, type IndexFilter, type VersionedWrites } from "./store-ports";
import { escapeJsonKeys, unescapeJsonKeys } from "./json-keys";
import { inSpan, SpanKind, type SpanOptions } from "../observability/tracing";

/** The most positions one refill of an index-answered page asks for (and documents it reads). */
const MAX_REFILL_BATCH = 400;

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
  /** Commands sent together (a fleet's children, many callers at once) are stored by one insert. */
  private readonly inserts: GroupedInserts<CommandDocument>;

  constructor(
    db: Db,
    private readonly versioned: VersionedWrites = mongoVersionedWrites,
    private readonly listIndex?: CommandListIndex,
  ) {
    this.collection = db.collection<CommandDocument>("commands");
    this.inserts = new GroupedInserts(this.collection);
  }

  /** `keep`: the store's index filter (the embedded store on SQLite keeps none of these: no query of its uses them). */
  async ensureIndexes(keep: IndexFilter = allIndexes): Promise<void> {
    await ensureIndexes(this.collection, [
      { key: { tenant: 1, createdAt: -1, _id: -1 }, name: "tenant_newest" },
      { key: { tenant: 1, deviceId: 1, createdAt: -1, _id: -1 }, name: "tenant_device_newest" },
      { key: { deviceId: 1, status: 1, createdAt: 1 }, name: "device_queue" },
      { key: { status: 1, updatedAt: 1 }, name: "status_updated" },
      { key: { "pendingAlert.kind": 1 }, name: "pending_alert" },
    ], keep);
  }

  /** Inserts a new command; `false` when a command with that id already exists (an idempotent resend). */
  async insert(command: Command): Promise<boolean> {
    return inSpan("store commands.insert", storeSpan("insert", command), () => this.inserts.insert(toDocument(command)));
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
    const conditions = queryConditions(query);
    const tenant = this.listIndex && pinnedTenant(scope);
    if (this.listIndex && tenant !== undefined) return this.listFromIndex(this.listIndex, tenant, scope, conditions, query, first, after);
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

  /**
   * The same page as the query above, with the order and the filters it can index taken from the index, then the
   * documents read by `_id`. Each document is matched against the whole filter again (the scope's conditions the
   * index does not take, and a command that changed or went between the two reads), and the page is refilled from
   * the index after the last position read until it is full or the index has no more.
   */
  private async listFromIndex(
    index: CommandListIndex,
    tenant: string,
    scope: Filter<CommandDocument>,
    conditions: Filter<CommandDocument>[],
    query: CommandQuery,
    first: number,
    after?: CommandPosition,
  ): Promise<Command[]> {
    const matches = guard(flatFilter(scope, ...conditions) as Record<string, unknown>);
    const indexQuery: CommandIndexQuery = {
      tenant,
      ...indexableScope(scope),
      deviceId: query.deviceId,
      statuses: query.status?.length ? query.status : undefined,
      type: query.type,
      source: query.source,
      since: query.since,
      until: query.until,
      limit: first,
    };
    const page: Command[] = [];
    let position = after;
    // A refill asks for twice as many as the round before: a scope the index cannot take (several roles' `$or`)
    // may leave out most rows, and each round is one SQL call.
    for (let batch = first; page.length < first; batch = Math.min(batch * 2, MAX_REFILL_BATCH)) {
      const positions = await index.newest({ ...indexQuery, after: position, limit: batch });
      const docs = await Promise.all(positions.map(({ id }) => this.collection.findOne({ _id: id })));
      for (const doc of docs) if (doc && matches(doc) && page.length < first) page.push(fromDocument(doc));
      if (positions.length < batch) break;
      position = positions[positions.length - 1];
    }
    return page;
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

function queryConditions(query: CommandQuery): Filter<CommandDocument>[] {
  const conditions: Filter<CommandDocument>[] = [];
  if (query.deviceId !== undefined) conditions.push({ deviceId: query.deviceId });
  if (query.status?.length) conditions.push({ status: { $in: query.status } });
  if (query.type !== undefined) conditions.push({ type: query.type });
  if (query.source !== undefined) conditions.push({ source: query.source as Command["source"] });
  const createdAt = { ...(query.since && { $gte: query.since }), ...(query.until && { $lt: query.until }) };
  if (Object.keys(createdAt).length) conditions.push({ createdAt });
  return conditions;
}

/** The one tenant a scope allows (every policy pins it: at its top, or in each branch of an `$or`), if it is one. */
function pinnedTenant(scope: Filter<CommandDocument>): string | undefined {
  if (typeof scope.tenant === "string") return scope.tenant;
  const branches = scope.$or as Filter<CommandDocument>[] | undefined;
  if (!branches?.length) return undefined;
  const tenants = new Set(branches.map(pinnedTenant));
  const [only] = tenants;
  return tenants.size === 1 ? only : undefined;
}

const isStringList = (value: unknown): value is string[] => Array.isArray(value) && value.every((v) => typeof v === "string");

/** The scope's top-level `site`/`type` lists (an operator's sites, an API key's types), which the index can take. */
function indexableScope(scope: Filter<CommandDocument>): Pick<CommandIndexQuery, "sites" | "types"> {
  const listOf = (value: unknown) => {
    const list = (value as { $in?: unknown } | undefined)?.$in;
    return isStringList(list) && Object.keys(value as object).length === 1 ? list : undefined;
  };
  return { sites: listOf(scope.site), types: listOf(scope.type) };
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
