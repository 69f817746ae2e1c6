import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, relative, resolve, sep } from "node:path";
import { parseArgs } from "node:util";
import { startEmbeddedStore, type EmbeddedStoreBackend } from "../src/embedded/ferretdb";
import { createLogger } from "../src/logger";
import { killGroup } from "./kit/process-groups";

/**
 * `npm test`: starts one FerretDB for the whole run (SQLite by default, or PostgreSQL with
 * `--store=postgresql`), checks that Mosquitto answers, then runs each test file as a process of its
 * own process group (two at a time, fault files one at a time). Each file uses its own database and
 * topic prefix. A file gets a budget (TEST_TIMEOUT_MS, default 4 min); a test inside it gets three
 * quarters of that unless it says otherwise, so a hanging test fails with its hooks run. A file still
 * running at its budget is killed with its process group and every group it registered, and the
 * report names the tests that were running.
 */
const PROGRESS_REPORTER = join(__dirname, "kit", "progress-reporter.js");
/** Files running now and the registries of the groups they started: killed if the runner itself is stopped. */
const running = new Map<number, string>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const [pid, registry] of running) {
      killGroup(pid, "SIGKILL");
      for (const pgid of liveGroups(registry)) killGroup(pgid, "SIGKILL");
    }
    process.exit(1);
  });
}

interface FileResult {
  file: string;
  ok: boolean;
  ms: number;
  /** Why it failed beyond its own output: a timeout, processes left running. */
  problems: string[];
  /** What a failed file's report says of its failures, repeated at the end of the run. */
  failures: string;
}

const FAILURE_EXCERPT_CHARS = 4000;

/** A failed file's report from the spec reporter's closing list of failures on, or else its last lines. */
function failureExcerpt(output: string): string {
  const listed = output.lastIndexOf("\u2716 failing tests:");
  const excerpt = listed >= 0 ? output.slice(listed) : output.split("\n").slice(-40).join("\n");
  return excerpt.length > FAILURE_EXCERPT_CHARS ? `${excerpt.slice(0, FAILURE_EXCERPT_CHARS)}\n[… cut; the whole report is above]` : excerpt;
}

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
  const budgetMs = Number(process.env.TEST_TIMEOUT_MS ?? 240_000);
  if (!Number.isInteger(budgetMs) || budgetMs <= 0) throw new Error("TEST_TIMEOUT_MS must be a positive whole number of milliseconds");

  const mosquitto = process.env.TEST_MOSQUITTO_URL ?? "mqtt://127.0.0.1:1883";
  await assertReachable(mosquitto);

  const backend: EmbeddedStoreBackend =
    values.store === "postgresql"
      ? { kind: "postgresql", url: process.env.TEST_POSTGRESQL_URL ?? "postgres://postgres@127.0.0.1:5432/test" }
      : { kind: "sqlite" };
  const dataDir = mkdtempSync(join(tmpdir(), "gateway-tests-"));
  const store = await startEmbeddedStore({ dataDir, log: createLogger("warn"), backend });
  console.log(`store: FerretDB (${backend.kind}) at ${store.uri}; broker: ${mosquitto} and in-process aedes; ${files.length} test files`);
  const started = Date.now();
  try {
    const env = { ...process.env, TEST_MONGODB_URI: store.uri, TEST_MOSQUITTO_URL: mosquitto, TEST_TIMEOUT_MS: String(budgetMs) };
    const results = await runAll(files, Number(values.concurrency), (file) => runFile(file, env, budgetMs, dataDir));
    const failed = results.filter((r) => !r.ok);
    console.log(`\n# ${results.length - failed.length}/${results.length} test files passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // Again at the end, where a reader of only the run's tail (a CI summary) finds them.
    for (const result of failed) console.log(`\n# FAILED ${relative(root, result.file)}${result.problems.map((p) => `\n#   ${p}`).join("")}\n${result.failures}`);
    return failed.length === 0 ? 0 : 1;
  } finally {
    await store.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * Runs `concurrency` files at a time, the fault files one at a time (each starts several gateways
 * and loads the shared store), the slowest kinds first so the run ends sooner.
 */
async function runAll(files: string[], concurrency: number, run: (file: string) => Promise<FileResult>): Promise<FileResult[]> {
  const isFault = (file: string) => file.includes(`${sep}faults${sep}`);
  const pending = [...files.filter(isFault), ...files.filter((f) => !isFault(f))];
  const results: FileResult[] = [];
  let faultRunning = false;
  const waiting: Array<() => void> = [];
  const workers = Array.from({ length: Math.max(1, concurrency) }, async () => {
    for (;;) {
      const index = pending.findIndex((file) => !(faultRunning && isFault(file)));
      if (index < 0) {
        if (pending.length === 0) return;
        await new Promise<void>((resolveWake) => waiting.push(resolveWake));
        continue;
      }
      const [file] = pending.splice(index, 1);
      const fault = isFault(file!);
      if (fault) faultRunning = true;
      results.push(await run(file!));
      if (fault) faultRunning = false;
      for (const wake of waiting.splice(0)) wake();
    }
  });
  await Promise.all(workers);
  return results;
}

function runFile(file: string, env: NodeJS.ProcessEnv, budgetMs: number, scratch: string): Promise<FileResult> {
  const id = Math.random().toString(36).slice(2, 10);
  const progressFile = join(scratch, `progress-${id}`);
  const registry = join(scratch, `groups-${id}`);
  const started = Date.now();
  const child = spawn(
    process.execPath,
    [
      "--test-reporter=spec",
      "--test-reporter-destination=stdout",
      `--test-reporter=${PROGRESS_REPORTER}`,
      `--test-reporter-destination=${progressFile}`,
      `--test-timeout=${Math.floor(budgetMs * 0.75)}`,
      file,
    ],
    { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...env, TEST_PROCESS_REGISTRY: registry } },
  );
  running.set(child.pid!, registry);
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const problems: string[] = [];
  const timer = setTimeout(() => {
    problems.push(`still running after its budget of ${budgetMs / 1000} s (TEST_TIMEOUT_MS), killed; tests running: ${runningTests(progressFile).join(" > ") || "none (in a hook)"}`);
    killGroup(child.pid!, "SIGKILL");
  }, budgetMs);
  return new Promise((resolveResult) => {
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      running.delete(child.pid!);
      // Whatever the file left behind: processes of its own group, and the groups the kit started.
      killGroup(child.pid!, "SIGKILL");
      const leftover = liveGroups(registry);
      for (const pgid of leftover) killGroup(pgid, "SIGKILL");
      if (leftover.length > 0 && problems.length === 0) problems.push(`left ${leftover.length} process group(s) running (${leftover.join(", ")}), killed`);
      if (code !== 0 && problems.length === 0) problems.push(`exited with ${code ?? signal}`);
      const ms = Date.now() - started;
      process.stdout.write(`\n# ${relative(resolve(__dirname), file)} (${(ms / 1000).toFixed(1)} s)\n${output}`);
      for (const problem of problems) process.stdout.write(`# ${problem}\n`);
      const ok = code === 0 && problems.length === 0;
      resolveResult({ file, ok, ms, problems, failures: ok ? "" : failureExcerpt(output) });
    });
  });
}

/** The innermost tests that started and have not finished, outermost first. */
function runningTests(progressFile: string): string[] {
  const stack: string[] = [];
  for (const line of readIfThere(progressFile).split("\n")) {
    const [kind, nesting, name] = line.split("\t");
    if (kind === "start") stack[Number(nesting)] = name!;
    if (kind === "end") stack.length = Number(nesting);
  }
  return stack.filter((name) => name !== undefined);
}

/** Process groups the kit registered and did not record as ended, that still have a member. */
function liveGroups(registry: string): number[] {
  const open = new Set<number>();
  for (const line of readIfThere(registry).split("\n")) {
    const [kind, pid] = line.split(" ");
    if (kind === "start") open.add(Number(pid));
    if (kind === "end") open.delete(Number(pid));
  }
  return [...open].filter((pgid) => {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  });
}

function readIfThere(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
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
