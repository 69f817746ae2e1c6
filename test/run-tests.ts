import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { startEmbeddedStore, type EmbeddedStoreBackend } from "../src/embedded/ferretdb";
import { createLogger } from "../src/logger";

/**
 * `npm test`: starts one FerretDB for the whole run (SQLite by default, or PostgreSQL with
 * `--store=postgresql`), checks that Mosquitto answers, then runs the suites with node:test.
 * Each test file uses its own database and topic prefix, so files run in parallel.
 */
async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      store: { type: "string", default: "sqlite" },
      suites: { type: "string", default: "unit,integration,e2e,faults,browser" },
      concurrency: { type: "string", default: "2" },
    },
  });
  if (values.store !== "sqlite" && values.store !== "postgresql") throw new Error("--store must be sqlite or postgresql");
  const root = resolve(__dirname);
  const files =
    positionals.length > 0
      ? positionals.map((p) => resolve(p))
      : values.suites.split(",").flatMap((suite) => testFiles(join(root, suite.trim())));
  if (files.length === 0) throw new Error("no test files found");

  const mosquitto = process.env.TEST_MOSQUITTO_URL ?? "mqtt://127.0.0.1:1883";
  await assertReachable(mosquitto);

  const backend: EmbeddedStoreBackend =
    values.store === "postgresql"
      ? { kind: "postgresql", url: process.env.TEST_POSTGRESQL_URL ?? "postgres://postgres@127.0.0.1:5432/test" }
      : { kind: "sqlite" };
  const dataDir = mkdtempSync(join(tmpdir(), "gateway-tests-"));
  const store = await startEmbeddedStore({ dataDir, log: createLogger("warn"), backend });
  console.log(`store: FerretDB (${backend.kind}) at ${store.uri}; broker: ${mosquitto} and in-process aedes; ${files.length} test files`);
  try {
    return await new Promise<number>((resolveExit) => {
      // A test file that hangs fails (after two minutes by default) instead of holding CI until its limit.
      const timeout = process.env.TEST_TIMEOUT_MS ?? "120000";
      const child = spawn(process.execPath, ["--test", `--test-concurrency=${values.concurrency}`, `--test-timeout=${timeout}`, ...files], {
        stdio: "inherit",
        env: { ...process.env, TEST_MONGODB_URI: store.uri, TEST_MOSQUITTO_URL: mosquitto },
      });
      child.on("exit", (code, signal) => resolveExit(code ?? (signal ? 1 : 0)));
    });
  } finally {
    await store.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function testFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return testFiles(path);
    return name.endsWith(".test.js") ? [path] : [];
  });
}

async function assertReachable(url: string): Promise<void> {
  const { hostname, port } = new URL(url);
  await new Promise<void>((resolveReachable, reject) => {
    const socket = connect(Number(port || 1883), hostname, () => {
      socket.end();
      resolveReachable();
    });
    socket.once("error", () => reject(new Error(`Mosquitto is not reachable at ${url}: start it (.ci/run does) or set TEST_MOSQUITTO_URL`)));
  });
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`test run failed: ${(error as Error).message}`);
    process.exit(1);
  },
);
