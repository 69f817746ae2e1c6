import {
  MongoClient,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  type Collection,
  type Db,
  type Document,
  type Filter,
  type OptionalUnlessRequiredId,
} from "mongodb";
import type { Logger } from "../logger";

export interface Database {
  client: MongoClient;
  db: Db;
  /** True while the driver has a usable connection (drives /readyz). */
  isConnected(): boolean;
  close(): Promise<void>;
}

/**
 * Connects with short timeouts: a mutation during a store outage must fail fast with a clear error,
 * never hang, and the driver reconnects on its own when the store is back.
 */
export async function connectDatabase(uri: string, dbName: string, log: Logger, options: { monitorCommands?: boolean } = {}): Promise<Database> {
  const client = new MongoClient(uri, {
    // The benchmark counts the store commands the gateway issues.
    monitorCommands: options.monitorCommands ?? false,
    serverSelectionTimeoutMS: 5_000,
    connectTimeoutMS: 5_000,
    socketTimeoutMS: 30_000,
    maxPoolSize: 50,
    retryWrites: true,
    appName: "iot-gateway",
    // Optional fields are left out of documents rather than stored as null.
    ignoreUndefined: true,
    // Notice a lost store within seconds (readiness), not the default 10 s.
    heartbeatFrequencyMS: 2_000,
  });
  let connected = false;
  client.on("serverHeartbeatSucceeded", () => (connected = true));
  client.on("serverHeartbeatFailed", () => (connected = false));
  client.on("topologyClosed", () => (connected = false));
  await client.connect();
  const db = client.db(dbName);
  await db.command({ ping: 1 });
  connected = true;
  log.info({ db: dbName }, "store connected");
  return {
    client,
    db,
    isConnected: () => connected,
    close: () => client.close(),
  };
}

/** The store could not be reached (as opposed to refusing an operation). */
export const isStoreUnavailableError = (error: unknown): boolean =>
  error instanceof MongoServerSelectionError ||
  error instanceof MongoNetworkError ||
  error instanceof MongoNotConnectedError ||
  error instanceof MongoTopologyClosedError;

/**
 * Runs an idempotent start-up step (creating indexes) again when the store drops the connection under
 * it, a few times with growing pauses: replicas starting together on one fresh store create the same
 * collections at once, which a replica set election or FerretDB v1 (a recovered panic closes the
 * connection) can answer that way. Any other error, or the last one, is thrown.
 */
export async function retryWhileUnavailable<T>(step: () => Promise<T>, log: Logger, what: string, attempts = 5): Promise<T> {
  for (let attempt = 1, delayMs = 250; ; attempt++, delayMs *= 2) {
    try {
      return await step();
    } catch (error) {
      if (!isStoreUnavailableError(error) || attempt >= attempts) throw error;
      log.warn({ err: (error as Error).message, attempt, retryInMs: delayMs }, `${what}: the store dropped the connection; trying again`);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** A stored document as the domain sees it: `_id` becomes `id`. */
export function withId<T extends { _id: string }>({ _id, ...rest }: T): Omit<T, "_id"> & { id: string } {
  return { id: _id, ...rest };
}

export const isDuplicateKeyError = (error: unknown): boolean =>
  typeof error === "object" && error !== null && (error as { code?: unknown }).code === 11000;

/**
 * Inserts unless a document with that `_id` exists: `false` then. A unique insert is the one write every
 * MongoDB-wire store makes exclusive, so it also decides races (idempotent resends, leases, alerts).
 */
export async function insertUnique<T extends Document>(collection: Collection<T>, doc: OptionalUnlessRequiredId<T>): Promise<boolean> {
  try {
    await collection.insertOne(doc);
    return true;
  } catch (error) {
    if (isDuplicateKeyError(error)) return false;
    throw error;
  }
}


/**
 * The conditions as one flat filter, which means the same as `{ $and: [...] }` on MongoDB and is
 * pushed down by FerretDB (which pushes nothing under `$and`). Only a key two conditions share
 * (e.g. two `$or`) is kept apart under `$and`.
 */
export function flatFilter<T>(...conditions: Filter<T>[]): Filter<T> {
  const flat: Record<string, unknown> = {};
  const apart: Filter<T>[] = [];
  for (const condition of conditions) {
    for (const [key, value] of Object.entries(condition)) {
      if (key in flat) apart.push({ [key]: value } as Filter<T>);
      else flat[key] = value;
    }
  }
  if (apart.length) flat.$and = "$and" in flat ? [...(flat.$and as Filter<T>[]), ...apart] : apart;
  return flat as Filter<T>;
}
