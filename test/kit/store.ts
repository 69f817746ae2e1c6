import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { MongoClient } from "mongodb";
import { startEmbeddedStore, type EmbeddedStore, type EmbeddedStorePorts } from "../../src/embedded/ferretdb";
import { createLogger } from "../../src/logger";

let started: Promise<EmbeddedStore> | undefined;

/**
 * The MongoDB-wire store for tests: the one the runner started (TEST_MONGODB_URI), or, when a test
 * file runs on its own, an embedded FerretDB started for this process. Each test uses its own database.
 */
export async function testStoreUri(): Promise<string> {
  if (process.env.TEST_MONGODB_URI) return process.env.TEST_MONGODB_URI;
  started ??= (async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "gateway-test-store-"));
    const store = await startEmbeddedStore({ dataDir, log: createLogger("warn") });
    process.once("exit", () => rmSync(dataDir, { recursive: true, force: true }));
    return store;
  })();
  return (await started).uri;
}

export async function stopTestStore(): Promise<void> {
  if (started) await (await started).stop();
  started = undefined;
}

/** A store of the test file's own, whose databases can be given the embedded store's version guard. */
export interface GuardedTestStore {
  uri: string;
  /** Installs the version guard (and the embedded store's indexes) on a database; the store ports that rely on them. */
  guard(dbName: string): Promise<EmbeddedStorePorts>;
  stop(): Promise<void>;
}

/**
 * Several gateway processes on one FerretDB need the version guard for their compare-and-set to be
 * atomic, as it is on MongoDB (FERRETDB.md §2). The runner's shared store cannot give one to a database
 * a gateway creates later, so a test of replicas racing on commands starts this store of its own.
 */
export async function startGuardedTestStore(): Promise<GuardedTestStore> {
  const dataDir = mkdtempSync(join(tmpdir(), "gateway-test-guarded-"));
  const store = await startEmbeddedStore({ dataDir, log: createLogger("warn") });
  return {
    uri: store.uri,
    async guard(dbName) {
      const client = await MongoClient.connect(store.uri);
      try {
        const ports = await store.tune(client.db(dbName), dbName);
        if (!ports) throw new Error("the test store has no version guard to install");
        return ports;
      } finally {
        await client.close();
      }
    },
    async stop() {
      await store.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const MOSQUITTO_URL = process.env.TEST_MOSQUITTO_URL ?? "mqtt://127.0.0.1:1883";

export const uniqueName = (prefix: string) => `${prefix}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

/** The FerretDB process itself (not the shell that watches it) serving `dataDir`. */
export function ferretdbPid(dataDir: string): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (basename(argv[0]) === "ferretdb" && argv.some((arg) => arg.includes(dataDir))) return Number(entry);
    } catch {
      // exited meanwhile
    }
  }
  throw new Error(`no FerretDB process for ${dataDir}`);
}
