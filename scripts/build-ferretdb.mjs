#!/usr/bin/env node
// Builds FerretDB (the embedded store's server) from the Go module proxy into a cache the project owns, and beside
// it the project's SQLite helper (src/embedded/sqlite-helper), which tunes FerretDB's SQLite files.
//
// Plain Node ESM with no dependencies, because CI runs it before `tsc`. It is the only implementation:
// src/embedded/ferretdb-binary.ts runs it with `--print-paths`.
//
//   node scripts/build-ferretdb.mjs                build if needed; progress on stderr
//   node scripts/build-ferretdb.mjs --print-paths  same, then print {"ferretdb": path, "sqliteHelper": path} on stdout
//
// Environment: FERRETDB_BIN (use that binary as is, no build), SQLITE_HELPER_BIN (the same for the helper),
// FERRETDB_CACHE_DIR (default ~/.cache/iot-gateway).

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const FERRETDB_VERSION = "v1.24.2";
const MODULE = "github.com/FerretDB/FerretDB";

const SQLITE_HELPER_SOURCE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "src", "embedded", "sqlite-helper");

function binDir(env = process.env) {
  const cacheRoot = env.FERRETDB_CACHE_DIR || path.join(os.homedir(), ".cache", "iot-gateway");
  return path.resolve(cacheRoot, `ferretdb-${FERRETDB_VERSION}`, "bin");
}

/** Where the binary lives once built. */
export function ferretdbBinaryPath(env = process.env) {
  return path.join(binDir(env), "ferretdb");
}

/** The helper's binary is named after a hash of its sources, so a changed helper is rebuilt and never confused with an old one. */
export function sqliteHelperBinaryPath(env = process.env) {
  const hash = createHash("sha256");
  for (const name of ["go.mod", "go.sum", "main.go"]) hash.update(name).update(fs.readFileSync(path.join(SQLITE_HELPER_SOURCE, name)));
  return path.join(binDir(env), `sqlite-helper-${hash.digest("hex").slice(0, 12)}`);
}

/**
 * Returns the path of the SQLite helper, building it on first use. It needs only modules FerretDB's build put in
 * the Go module cache (the same modernc.org/sqlite), so it takes seconds after FerretDB and works offline.
 * @param {{ log?: (line: string) => void }} [opts]
 * @returns {Promise<string>}
 */
export async function ensureSqliteHelper({ log = (line) => process.stderr.write(`${line}\n`) } = {}) {
  return ensureBuilt("SQLITE_HELPER_BIN", sqliteHelperBinaryPath(), async (bin) => isExecutable(bin), buildSqliteHelper, log);
}

async function buildSqliteHelper(bin, log) {
  await requireGo("the embedded store's SQLite helper", "SQLITE_HELPER_BIN");
  const started = Date.now();
  log("building the SQLite helper of the embedded store (first run only)…");
  const partial = `${bin}.partial-${process.pid}`;
  const env = { ...process.env, GOTOOLCHAIN: process.env.GOTOOLCHAIN || "local", GOFLAGS: "-mod=readonly" };
  const result = await run("go", ["build", "-trimpath", "-o", partial, "."], { cwd: SQLITE_HELPER_SOURCE, env });
  if (result.code !== 0) {
    fs.rmSync(partial, { force: true });
    throw new Error(`go build of the SQLite helper failed: ${tail(result.stderr)}`);
  }
  fs.renameSync(partial, bin);
  log(`built the SQLite helper in ${Math.round((Date.now() - started) / 1000)} s: ${bin}`);
}

/** The binary named by the environment variable `override`, else `bin`, built under the cache's lock unless `isBuilt`. */
async function ensureBuilt(override, bin, isBuilt, buildInto, log) {
  const given = process.env[override];
  if (given) {
    if (!isExecutable(given)) throw new Error(`${override}=${given} is not an executable file`);
    return given;
  }
  if (await isBuilt(bin)) return bin;
  fs.mkdirSync(path.dirname(bin), { recursive: true });
  const unlock = await lockBuild(path.dirname(bin), log);
  try {
    // Another process may have finished the build while we waited for the lock.
    if (!(await isBuilt(bin))) await buildInto(bin, log);
  } finally {
    unlock();
  }
  return bin;
}

/**
 * Returns the path of a FerretDB v1.24.2 binary, building it on first use.
 * @param {{ log?: (line: string) => void }} [opts] progress lines (default: stderr)
 * @returns {Promise<string>}
 */
export async function ensureFerretdb({ log = (line) => process.stderr.write(`${line}\n`) } = {}) {
  return ensureBuilt("FERRETDB_BIN", ferretdbBinaryPath(), hasRightVersion, build, log);
}

async function build(bin, log) {
  await requireGo(`FerretDB ${FERRETDB_VERSION}`, "FERRETDB_BIN");
  const started = Date.now();
  log(`building FerretDB ${FERRETDB_VERSION} (first run only, ~1 min)…`);

  // Outside any module, so `go` resolves the version through the proxy rather than a surrounding go.mod.
  const download = await run("go", ["mod", "download", "-json", `${MODULE}@${FERRETDB_VERSION}`], { cwd: os.tmpdir() });
  const info = parseJson(download.stdout);
  if (download.code !== 0 || !info?.Dir) {
    throw new Error(`go mod download ${MODULE}@${FERRETDB_VERSION} failed: ${info?.Error ?? tail(download.stderr)}`);
  }

  // The module cache is read-only and lacks build/version/version.txt, without which the binary panics
  // at start ("Invalid build/version/version.txt"): build from a writable copy that has it.
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "ferretdb-src-"));
  try {
    fs.cpSync(info.Dir, work, { recursive: true });
    makeWritable(work);
    fs.writeFileSync(path.join(work, "build", "version", "version.txt"), `${FERRETDB_VERSION}\n`);

    // Written under a temporary name and renamed, so a half-built binary is never picked up.
    const partial = `${bin}.partial-${process.pid}`;
    const env = { ...process.env, GOTOOLCHAIN: process.env.GOTOOLCHAIN || "local" };
    const result = await run("go", ["build", "-trimpath", "-o", partial, "./cmd/ferretdb"], { cwd: work, env });
    if (result.code !== 0) {
      fs.rmSync(partial, { force: true });
      throw new Error(`go build of FerretDB ${FERRETDB_VERSION} failed: ${tail(result.stderr)}`);
    }
    fs.renameSync(partial, bin);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  if (!(await hasRightVersion(bin))) throw new Error(`built ${bin}, but its --version does not report ${FERRETDB_VERSION}`);
  log(`built FerretDB ${FERRETDB_VERSION} in ${Math.round((Date.now() - started) / 1000)} s: ${bin}`);
}

async function requireGo(what, override) {
  try {
    const result = await run("go", ["version"], {});
    if (result.code === 0) return;
  } catch {
    // ENOENT: handled below
  }
  throw new Error(
    `${what} must be built once and the Go toolchain ('go') is not on PATH: install Go >= 1.24, or set ${override} to a built binary, or set MONGODB_URI`,
  );
}

async function hasRightVersion(bin) {
  if (!isExecutable(bin)) return false;
  try {
    const result = await run(bin, ["--version"], { timeoutMs: 10_000 });
    return result.code === 0 && new RegExp(`^version: ${FERRETDB_VERSION.replace(/\./g, "\\.")}$`, "m").test(result.stdout);
  } catch {
    return false;
  }
}

/**
 * A directory created with mkdir is the lock (atomic); it holds the owner's pid so a lock left by a
 * killed build is taken over instead of waited on forever.
 */
async function lockBuild(dir, log) {
  const lock = path.join(dir, ".build.lock");
  let announced = false;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, "pid"), String(process.pid));
      return () => fs.rmSync(lock, { recursive: true, force: true });
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
    }
    const owner = Number(readOr(path.join(lock, "pid"), ""));
    // A lock without a pid may be one being created right now; only a dead owner makes it stale.
    if (owner && !isAlive(owner)) {
      fs.rmSync(lock, { recursive: true, force: true });
      continue;
    }
    if (!announced) {
      log(`waiting for another process (pid ${owner || "?"}) that is building FerretDB ${FERRETDB_VERSION}…`);
      announced = true;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function run(cmd, args, { cwd, env, timeoutMs } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function makeWritable(dir) {
  fs.chmodSync(dir, 0o755);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) makeWritable(p);
    else if (entry.isFile()) fs.chmodSync(p, fs.statSync(p).mode | 0o200);
  }
}

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

function readOr(file, fallback) {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch {
    return fallback;
  }
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function tail(text, lines = 15) {
  return text.trim().split("\n").slice(-lines).join("\n");
}

const invokedDirectly = process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url));
if (invokedDirectly) {
  try {
    const ferretdb = await ensureFerretdb();
    const sqliteHelper = await ensureSqliteHelper();
    if (process.argv.includes("--print-paths")) process.stdout.write(`${JSON.stringify({ ferretdb, sqliteHelper })}\n`);
    else process.stderr.write(`FerretDB ${FERRETDB_VERSION}: ${ferretdb}\nSQLite helper: ${sqliteHelper}\n`);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
