import { spawn } from "node:child_process";
import type { ChildProcessByStdio } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";
import type { Readable, Writable } from "node:stream";
import { MongoClient, type Db } from "mongodb";
import type { Logger } from "../logger";
import type { CommandIdQueries, CommandListIndex, VersionedWrites } from "../store/store-ports";
import { ensureStoreBinaries } from "./ferretdb-binary";
import { findFreePort } from "./free-port";
import { SqliteHelper } from "./sqlite-helper";
import { GuardedVersionedWrites, SqliteCommandIdQueries, SqliteCommandListIndex } from "./sqlite-store-ports";
import { tuneSqliteDatabase } from "./sqlite-tuning";

export type EmbeddedStoreBackend = { kind: "sqlite" } | { kind: "postgresql"; url: string };

export interface EmbeddedStoreOptions {
  /** Root of the store's files: `<dataDir>/ferretdb/` (SQLite), `<dataDir>/ferretdb-state/`, a lock file. */
  dataDir: string;
  log: Logger;
  /** Default SQLite files under dataDir. */
  backend?: EmbeddedStoreBackend;
  /** SQLite pragmas on every connection (default SQLITE_PRAGMAS); for measuring others (bench/embedded-store.ts). */
  sqlitePragmas?: readonly string[];
}

/** The store ports as the embedded store implements them (src/store/store-ports.ts). */
export interface EmbeddedStorePorts {
  versionedWrites: VersionedWrites;
  commandIdQueries: CommandIdQueries;
  commandListIndex: CommandListIndex;
}

/** What the supervisor did after FerretDB died: started it again, or gave up (the gateway must exit). */
export type SupervisionEvent = { kind: "restarted"; attempt: number } | { kind: "gave-up"; error: Error };

export interface EmbeddedStore {
  /** MongoDB connection string of the running server, e.g. `mongodb://127.0.0.1:40123/`. It survives restarts. */
  readonly uri: string;
  /**
   * Sets the database up for speed and compare-and-set once its collections exist (SQLite: see sqlite-tuning.ts),
   * and returns the store ports that rely on it. Undefined on the PostgreSQL backend: the MongoDB ones apply.
   */
  tune(db: Db, dbName: string): Promise<EmbeddedStorePorts | undefined>;
  /** False while FerretDB is down (being restarted, or given up on). */
  isRunning(): boolean;
  onSupervision(listener: (event: SupervisionEvent) => void): void;
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and releases the data directory. Idempotent. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;
const PORT_ATTEMPTS = 3;
/** Waits before each restart after FerretDB died; then the supervisor gives up. */
const RESTART_BACKOFF_MS = [250, 1_000, 2_000, 4_000, 8_000];
/** A FerretDB that has run this long without dying has recovered: the back-off starts over. */
const HEALTHY_AFTER_MS = 60_000;

/**
 * SQLite settings on every FerretDB connection, measured on this machine (README, "Embedded store"):
 * `synchronous(normal)` is safe in WAL mode against a crash of the process (the OOM killer included; only a power
 * loss may lose the last commits) and makes every commit cheaper. `cache_size`, `mmap_size` and `temp_store` made
 * no difference beyond noise, so they are left at SQLite's defaults.
 */
export const SQLITE_PRAGMAS: readonly string[] = ["synchronous(normal)"];

/**
 * Starts FerretDB as a child process: a MongoDB-wire server over SQLite files in `dataDir`
 * (or over PostgreSQL), so the gateway runs without an external database and its data survives restarts.
 * If FerretDB dies (the OOM killer), it is started again on the same files and port, so the driver reconnects.
 */
export async function startEmbeddedStore(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
  const dataDir = path.resolve(opts.dataDir);
  const log = opts.log.child({ component: "embedded-store" });
  fs.mkdirSync(dataDir, { recursive: true });
  const releaseLock = lockDataDir(dataDir);
  try {
    const binaries = await ensureStoreBinaries(log);
    const stateDir = path.join(dataDir, "ferretdb-state");
    fs.mkdirSync(stateDir, { recursive: true });
    const backendKind = opts.backend?.kind ?? "sqlite";
    const backend = backendArguments(opts.backend ?? { kind: "sqlite" }, dataDir, opts.sqlitePragmas ?? SQLITE_PRAGMAS);
    const launchOn = (port: number) =>
      launch(binaries.ferretdb, backend.env, [
        ...backend.args,
        `--state-dir=${stateDir}`,
        `--listen-addr=127.0.0.1:${port}`,
        // "-" disables the debug HTTP listener (cmd/ferretdb/main.go), whose fixed default 127.0.0.1:8088 would collide.
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=warn",
        "--log-format=json",
      ], log);

    const { server: first, port } = await startOnFreePort(launchOn);
    const uri = `mongodb://127.0.0.1:${port}/`;
    log.info({ uri, dataDir, backend: backendKind }, "embedded store (FerretDB) ready");

    const supervisor = new Supervisor(first, () => launchOn(port), port, log);
    const sqlite = backend.sqliteDir ? new SqliteHelper(binaries.sqliteHelper) : undefined;
    let stopping: Promise<void> | undefined;
    return {
      uri,
      async tune(db, dbName) {
        if (!sqlite || !backend.sqliteDir) return undefined;
        const tuned = await tuneSqliteDatabase(db, path.join(backend.sqliteDir, `${dbName}.sqlite`), sqlite, log);
        return {
          versionedWrites: new GuardedVersionedWrites(),
          commandIdQueries: new SqliteCommandIdQueries(sqlite, tuned),
          commandListIndex: new SqliteCommandListIndex(sqlite, tuned),
        };
      },
      isRunning: () => supervisor.isRunning(),
      onSupervision: (listener) => supervisor.listeners.push(listener),
      stop: () =>
        (stopping ??= supervisor.stop().finally(() => {
          releaseLock();
          log.info("embedded store (FerretDB) stopped");
        })),
    };
  } catch (err) {
    releaseLock();
    throw err;
  }
}

async function startOnFreePort(launchOn: (port: number) => ServerProcess): Promise<{ server: ServerProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    // The port is free when picked but could be taken before FerretDB binds it: then pick another.
    const port = await findFreePort();
    const server = launchOn(port);
    try {
      await waitUntilReady(port, server);
      return { server, port };
    } catch (err) {
      await server.stop();
      if (attempt < PORT_ATTEMPTS && /address already in use/i.test(server.outputTail())) continue;
      throw err;
    }
  }
}

/**
 * Keeps FerretDB running: when it exits unexpectedly, starts it again on the same port (the driver reconnects by
 * itself) after a growing pause, and gives up after the last one. The data is on disk either way.
 */
class Supervisor {
  readonly listeners: Array<(event: SupervisionEvent) => void> = [];
  private running = true;
  private stopRequested = false;
  private failures = 0;
  private startedAt = Date.now();

  constructor(
    private current: ServerProcess,
    private readonly relaunch: () => ServerProcess,
    private readonly port: number,
    private readonly log: Logger,
  ) {
    this.watch(current);
  }

  isRunning(): boolean {
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopRequested = true;
    await this.current.stop();
  }

  private watch(server: ServerProcess): void {
    server.onUnexpectedExit((code, signal) => {
      this.running = false;
      this.log.error({ code, signal, output: server.outputTail() }, "embedded store (FerretDB) exited unexpectedly; restarting it");
      void this.restart();
    });
  }

  private async restart(): Promise<void> {
    if (Date.now() - this.startedAt > HEALTHY_AFTER_MS) this.failures = 0;
    let lastError: Error = new Error("FerretDB exited");
    while (!this.stopRequested && this.failures < RESTART_BACKOFF_MS.length) {
      await new Promise((resolve) => setTimeout(resolve, RESTART_BACKOFF_MS[this.failures]));
      this.failures++;
      if (this.stopRequested) return;
      const next = this.relaunch();
      this.current = next;
      try {
        await waitUntilReady(this.port, next);
      } catch (error) {
        lastError = error as Error;
        this.log.error({ attempt: this.failures, err: lastError.message }, "embedded store (FerretDB) did not come back");
        await next.stop();
        continue;
      }
      if (this.stopRequested) return;
      this.running = true;
      this.startedAt = Date.now();
      this.watch(next);
      this.log.warn({ attempt: this.failures, port: this.port }, "embedded store (FerretDB) restarted");
      this.emit({ kind: "restarted", attempt: this.failures });
      return;
    }
    if (this.stopRequested) return;
    const error = new Error(`embedded store (FerretDB) could not be restarted after ${this.failures} attempts: ${lastError.message}`);
    this.log.error({ err: error.message }, "embedded store (FerretDB) given up");
    this.emit({ kind: "gave-up", error });
  }

  private emit(event: SupervisionEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}

function backendArguments(backend: EmbeddedStoreBackend, dataDir: string, sqlitePragmas: readonly string[]): { args: string[]; env: NodeJS.ProcessEnv; sqliteDir?: string } {
  // In the environment (FerretDB reads FERRETDB_<FLAG>), not argv, so the URL's password is not in the process list.
  if (backend.kind === "postgresql") return { args: ["--handler=postgresql"], env: { FERRETDB_POSTGRESQL_URL: backend.url } };
  const sqliteDir = path.join(dataDir, "ferretdb");
  // FerretDB hands the decoded path on to SQLite as a URI, where "?" and "#" would cut it short.
  if (/[?#%]/.test(sqliteDir)) throw new Error(`data directory ${dataDir} must not contain "?", "#" or "%" (the embedded store uses it in a URL)`);
  fs.mkdirSync(sqliteDir, { recursive: true });
  // FerretDB wants a file: URL of an existing directory, with a trailing slash.
  const urlPath = sqliteDir.split(path.sep).map(encodeURIComponent).join("/");
  const query = sqlitePragmas.map((pragma) => `_pragma=${pragma}`).join("&");
  return { args: ["--handler=sqlite", `--sqlite-url=file:${urlPath}/${query ? `?${query}` : ""}`], env: {}, sqliteDir };
}

// ---------------------------------------------------------------------------------------------------------------
// One running store per data directory: two FerretDB processes on the same SQLite files would corrupt each other's
// view of the metadata.

/** Data directories locked by this process; a lock file naming our own pid but absent here is stale (pid reuse in containers). */
const lockedDataDirs = new Set<string>();

function lockDataDir(dataDir: string): () => void {
  const file = path.join(dataDir, "ferretdb.lock");
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
      lockedDataDirs.add(dataDir);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        lockedDataDirs.delete(dataDir);
        if (readPid(file) === process.pid) fs.rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const owner = readPid(file);
    if (owner === process.pid && lockedDataDirs.has(dataDir)) {
      throw new Error(`data directory ${dataDir} is already used by an embedded store of this process`);
    }
    if (owner !== undefined && owner !== process.pid && isAlive(owner)) {
      throw new Error(
        `data directory ${dataDir} is used by the embedded store of another running process (pid ${owner}); stop it, choose another DATA_DIR, or delete ${file} if that pid is not a gateway`,
      );
    }
    fs.rmSync(file, { force: true }); // stale: its owner is gone
  }
  throw new Error(`could not lock data directory ${dataDir} (${file} keeps reappearing)`);
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(fs.readFileSync(file, "utf8"), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  // A killed gateway not yet reaped by its parent is a zombie: signal 0 reaches it, but it holds nothing.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no procfs: trust the signal
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The child process, which must never outlive the gateway.

/**
 * Runs FerretDB ($0, args "$@") under /bin/sh with a watchdog: Node cannot ask the kernel to kill a child when the
 * parent dies (no prctl), but every exit of the parent, SIGKILL included, closes the parent's end of the stdin pipe.
 * The watchdog blocks reading that pipe and, on EOF, signals the shell. The shell turns SIGTERM, from the watchdog
 * or from stop(), into exactly one SIGTERM for FerretDB (a second one makes it exit at once instead of gracefully),
 * and exits only after FerretDB has, so "the child exited" means the store's files are closed.
 */
const WATCHDOG_SCRIPT = `
fdb= sent=
trap 'if [ -n "$fdb" ] && [ -z "$sent" ]; then sent=1; kill -TERM "$fdb" 2>/dev/null; fi' TERM INT HUP
exec 3<&0
"$0" "$@" </dev/null 3<&- &
fdb=$!
( read -r _ <&3; kill -TERM $$ 2>/dev/null ) &
dog=$!
exec 3<&-
while :; do
  wait "$fdb"; rc=$?
  kill -0 "$fdb" 2>/dev/null || break
done
kill "$dog" 2>/dev/null
exit "$rc"
`;

interface ServerProcess {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  outputTail(): string;
  onUnexpectedExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void;
  stop(): Promise<void>;
}

function launch(binary: string, env: NodeJS.ProcessEnv, args: string[], log: Logger): ServerProcess {
  // detached: its own process group, so a terminal's Ctrl-C reaches only the gateway, which then stops the store
  // in order; and so the SIGKILL fallback can reach the whole group.
  const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn("/bin/sh", ["-c", WATCHDOG_SCRIPT, binary, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
    env: { ...process.env, ...env },
  });
  const tail: string[] = [];
  const onLine = (line: string) => {
    if (!line.trim()) return;
    tail.push(line);
    if (tail.length > 20) tail.shift();
    forwardLogLine(log, line);
  };
  readline.createInterface({ input: child.stdout }).on("line", onLine);
  readline.createInterface({ input: child.stderr }).on("line", onLine);
  child.stdin.on("error", () => undefined); // EPIPE once the shell is gone: nothing to tell it any more

  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let stopRequested = false;
  const unexpectedExitListeners: Array<(code: number | null, signal: NodeJS.Signals | null) => void> = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("error", (err) => {
      tail.push(`cannot start FerretDB: ${err.message}`);
      exitInfo ??= { code: null, signal: null };
      resolve(exitInfo);
    });
    child.on("exit", (code, signal) => {
      exitInfo = { code, signal };
      process.off("exit", killOnParentExit);
      if (!stopRequested) {
        // The shell or FerretDB alone was killed (the OOM killer picks one): nothing of this launch may survive
        // to hold the port or the files when it is started again.
        signalGroup("SIGKILL");
        for (const listener of unexpectedExitListeners) listener(code, signal);
      }
      resolve(exitInfo);
    });
  });

  const signalGroup = (signal: NodeJS.Signals) => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  // A normal exit of the gateway closes the pipe anyway; this just doesn't wait for the watchdog to notice.
  // Only the shell is signalled: it forwards one SIGTERM (see WATCHDOG_SCRIPT).
  const killOnParentExit = () => child.kill("SIGTERM");
  process.on("exit", killOnParentExit);

  return {
    exited,
    hasExited: () => exitInfo !== undefined,
    outputTail: () => tail.join("\n"),
    onUnexpectedExit: (listener) => unexpectedExitListeners.push(listener),
    async stop() {
      stopRequested = true;
      if (exitInfo) return;
      child.kill("SIGTERM"); // the shell forwards it once; closing stdin is the same request by the other path
      child.stdin.end();
      const timer = setTimeout(() => {
        log.warn("embedded store (FerretDB) did not stop within 5 s; killing it");
        signalGroup("SIGKILL");
      }, STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

interface FerretdbLogEntry {
  level?: unknown;
  msg?: unknown;
  source?: { function?: unknown };
}

/**
 * FerretDB writes JSON log lines (`--log-format=json`). Its info is our debug. Its per-connection warnings (every
 * command it answers with an error, e.g. the driver's `endSessions`, which it lacks; every closed connection) are
 * routine chatter, so debug too; other warnings and errors stay such.
 */
function forwardLogLine(log: Logger, line: string): void {
  let entry: FerretdbLogEntry | undefined;
  try {
    const parsed: unknown = JSON.parse(line);
    entry = parsed && typeof parsed === "object" ? (parsed as FerretdbLogEntry) : undefined;
  } catch {
    entry = undefined;
  }
  if (!entry) {
    log.warn({ ferretdb: line }, "FerretDB output");
    return;
  }
  const level = typeof entry.level === "string" ? entry.level : "";
  const source = typeof entry.source?.function === "string" ? entry.source.function : "";
  const msg = typeof entry.msg === "string" ? `FerretDB: ${entry.msg}` : "FerretDB output";
  if (source.includes("/internal/clientconn.") && !level.startsWith("ERROR")) log.debug({ ferretdb: entry }, msg);
  else if (level.startsWith("ERROR")) log.error({ ferretdb: entry }, msg);
  else if (level.startsWith("WARN")) log.warn({ ferretdb: entry }, msg);
  else log.debug({ ferretdb: entry }, msg);
}

/** Ready means it answers a MongoDB `ping`; fails early, with FerretDB's last output, if it exits first. */
async function waitUntilReady(port: number, server: ServerProcess): Promise<void> {
  const uri = `mongodb://127.0.0.1:${port}/`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError: unknown;
  while (!server.hasExited()) {
    const client = new MongoClient(uri, { directConnection: true, serverSelectionTimeoutMS: 1000, connectTimeoutMS: 1000 });
    try {
      // The driver waits out its whole selection timeout on a refused connection; a bare TCP probe fails fast.
      await tcpProbe(port);
      await client.connect();
      await client.db("admin").command({ ping: 1 });
      return;
    } catch (err) {
      lastError = err;
    } finally {
      await client.close().catch(() => undefined);
    }
    if (Date.now() > deadline) {
      const reason = lastError instanceof Error ? lastError.message : String(lastError);
      throw new Error(`embedded store (FerretDB) did not answer ping within ${READY_TIMEOUT_MS / 1000} s (${reason}); its output:\n${server.outputTail()}`);
    }
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 50)), server.exited]);
  }
  const { code, signal } = await server.exited;
  throw new Error(`embedded store (FerretDB) exited during start-up (code ${String(code)}, signal ${String(signal)}); its output:\n${server.outputTail()}`);
}

function tcpProbe(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  });
}
