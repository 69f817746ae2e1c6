import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { MongoClient, type Collection } from "mongodb";
import { FINAL_STATUSES } from "../src/commands/state-machine";
import { startEmbeddedStore, type EmbeddedStorePorts } from "../src/embedded/ferretdb";
import { createLogger } from "../src/logger";
import type { CommandIdQueries } from "../src/store/store-ports";
import { ferretdbPid } from "../test/kit/store";

/**
 * `npm run bench:store`: point operations of the embedded store (FerretDB v1.24.2 on SQLite) as stored history
 * grows, before the gateway's tuning (FerretDB's default URL, no extra index) and after it (SQLITE_PRAGMAS, the
 * `_id`, status/updatedAt indexes and the version guard), plus FerretDB's CPU while idle. A measurement, not a test:
 * it prints a Markdown table. `--sizes 0,20000,100000` (default), `--variants` also compares other SQLite pragmas.
 */
interface CommandDoc {
  _id: string;
  tenant: string;
  deviceId: string;
  type: string;
  status: string;
  payload: Record<string, unknown>;
  createdAt: Date;
  updatedAt: Date;
  v: number;
  history: Array<{ status: string; at: Date }>;
}

const log = createLogger("warn");

/** About 600 bytes stored, shaped like a finished command. */
function finishedCommand(id: string, at: Date): CommandDoc {
  return {
    _id: id,
    tenant: "t1",
    deviceId: `device-${id.length % 97}`,
    type: "thermostat.setTemperature",
    status: FINAL_STATUSES[id.length % FINAL_STATUSES.length],
    payload: { celsius: 22, note: "x".repeat(120) },
    createdAt: at,
    updatedAt: at,
    v: 3,
    history: ["QUEUED", "SENT", "DELIVERED", "SUCCEEDED"].map((status) => ({ status, at })),
  };
}

interface Row {
  setup: string;
  stored: number;
  results: Record<string, string>;
}

/** Runs `op` until `count` runs or `budgetMs` passed (at least 3): mean ms per op. */
async function perOp(count: number, budgetMs: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  let i = 0;
  while (i < count && (i < 3 || performance.now() - started < budgetMs)) await op(i++);
  return (performance.now() - started) / i;
}

const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));

/** The queries CommandIdQueries stands for, as plain MongoDB queries (what an untuned store answers). */
function mongoIdQueries(commands: Collection<CommandDoc>): CommandIdQueries {
  const ids = async (filter: object, limit: number) =>
    (await commands.find(filter, { projection: { _id: 1 } }).limit(limit).toArray()).map((doc) => doc._id);
  return {
    idsWithStatus: (statuses, limit) => ids({ status: { $in: statuses } }, limit),
    finalIdsUpdatedBefore: (before, limit) => ids({ status: { $in: FINAL_STATUSES }, updatedAt: { $lt: before } }, limit),
  };
}

async function measureSetup(setup: string, sizes: number[], tuned: boolean, pragmas?: readonly string[]): Promise<Row[]> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-store-"));
  const store = await startEmbeddedStore({ dataDir, log, sqlitePragmas: pragmas ?? (tuned ? undefined : []) });
  const client = await new MongoClient(store.uri, { socketTimeoutMS: 600_000 }).connect();
  const rows: Row[] = [];
  try {
    const db = client.db("bench_store");
    const commands = db.collection<CommandDoc>("commands");
    await commands.insertOne(finishedCommand("seed-0", new Date(0)));
    let ports: EmbeddedStorePorts | undefined;
    if (tuned) ports = await store.tune(db, "bench_store");
    const idQueries = ports?.commandIdQueries ?? mongoIdQueries(commands);
    let stored = 1;
    for (const size of sizes) {
      for (; stored < size; ) {
        const batch = Array.from({ length: Math.min(1000, size - stored) }, (_, i) => finishedCommand(`seed-${stored + i}`, new Date(Date.UTC(2020, 0, 1) + stored + i)));
        await commands.insertMany(batch, { ordered: false });
        stored += batch.length;
      }
      const existing = (i: number) => `seed-${Math.floor(((i * 7919) % Math.max(stored, 1)))}`;
      const results: Record<string, string> = {};
      const insertMs = await perOp(200, 10_000, () => commands.insertOne({ ...finishedCommand(randomUUID(), new Date()), status: "QUEUED", v: 0 }));
      results["insertOne/s"] = (1000 / insertMs).toFixed(0);
      results["updateOne({_id}) ms"] = fmt(
        await perOp(50, 15_000, (i) => commands.updateOne({ _id: existing(i) }, { $set: { updatedAt: new Date() }, $inc: { v: 1 } })),
      );
      results["findOneAndUpdate({_id}) ms"] = fmt(
        await perOp(50, 15_000, (i) =>
          commands.findOneAndUpdate({ _id: existing(i + 13) }, { $set: { updatedAt: new Date() }, $inc: { v: 1 } }, { returnDocument: "after" }),
        ),
      );
      results["findOne({_id}) ms"] = fmt(await perOp(50, 15_000, (i) => commands.findOne({ _id: existing(i + 29) })));
      results["idsWithStatus ms"] = fmt(await perOp(5, 5_000, () => idQueries.idsWithStatus(["QUEUED", "SENT", "DELIVERED"], 500)));
      results["finalIdsUpdatedBefore ms"] = fmt(await perOp(5, 5_000, () => idQueries.finalIdsUpdatedBefore(new Date(Date.UTC(2020, 0, 2)), 500)));
      results["idle FerretDB CPU %"] = (await idleCpuPercent(dataDir, 10_000)).toFixed(1);
      rows.push({ setup, stored, results });
      process.stderr.write(`${setup} @ ${stored}: ${JSON.stringify(results)}\n`);
    }
  } finally {
    await client.close();
    await store.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return rows;
}

/** CPU time FerretDB used over `ms` with no client activity, as % of one core (from /proc). */
async function idleCpuPercent(dataDir: string, ms: number): Promise<number> {
  const pid = ferretdbPid(dataDir);
  const ticks = () => {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  };
  const before = ticks();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return ((ticks() - before) / 100 / (ms / 1000)) * 100; // USER_HZ is 100 on Linux
}

function table(rows: Row[]): string {
  const columns = Object.keys(rows[0].results);
  const lines = [`| Setup | Stored commands | ${columns.join(" | ")} |`, `| --- | ---: | ${columns.map(() => "---:").join(" | ")} |`];
  for (const row of rows) lines.push(`| ${row.setup} | ${row.stored.toLocaleString("en-US")} | ${columns.map((c) => row.results[c]).join(" | ")} |`);
  return lines.join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sizes: { type: "string", default: "0,20000,100000" }, variants: { type: "boolean", default: false }, "skip-before": { type: "boolean", default: false } } });
  const sizes = values.sizes.split(",").map(Number);
  const rows: Row[] = [];
  rows.push(...(await measureSetup("tuned", sizes, true)));
  if (!values["skip-before"]) rows.push(...(await measureSetup("FerretDB defaults", sizes, false)));
  if (values.variants) {
    const at = [sizes.find((size) => size > 0) ?? 20_000];
    for (const extra of ["cache_size(-65536)", "mmap_size(268435456)", "temp_store(memory)"]) {
      rows.push(...(await measureSetup(`tuned + ${extra}`, at, true, ["synchronous(normal)", extra])));
    }
    rows.push(...(await measureSetup("tuned, synchronous at SQLite's default (full)", at, true, [])));
  }
  process.stdout.write(`${table(rows)}\n\n(${os.cpus().length} cores, ${os.cpus()[0]?.model ?? "?"}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(" ")} at the end)\n`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
