import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { MongoClient } from "mongodb";
import { benchDevice, startBenchGateway } from "./children";
import { runClosedLoop } from "./closed-loop";
import { CollectionKeeper } from "./collection-keeper";
import { seedFinalCommands } from "./history";
import { clockTicksPerSecond, cpuPercent, descendants, readAllProcStats, readProcStats } from "./proc-cpu";
import { round, spread } from "./stats";
import { opsBetween, type StoreOpCounts } from "./store-ops";

const USAGE = "usage: npm run bench:history [-- --stored 100000] [--concurrency 32] [--seconds 6] [--repeats 3] [--profile DIR] [--out FILE]";
const DEVICES = 100;

/**
 * `npm run bench:history`: only the history condition of `npm run bench`, to find what bounds it without the
 * 9-minute full run. The gateway as the bench starts it (child process, embedded FerretDB on SQLite, aedes), the
 * same devices and closed loop: runs on the empty store (final commands cleared every second, as the bench
 * does), then `--stored` final commands seeded with the bench's own seeding, then the same runs on that history.
 * Per run: throughput, FerretDB's and the gateway's CPU (share of one core), store commands, and the SQLite
 * file and WAL sizes.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      stored: { type: "string", default: "100000" },
      concurrency: { type: "string", default: "32" },
      seconds: { type: "string", default: "6" },
      repeats: { type: "string", default: "3" },
      profile: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return void console.log(USAGE);
  const stored = Number(values.stored);
  const concurrency = Number(values.concurrency);
  const runMs = Number(values.seconds) * 1000;
  const repeats = Number(values.repeats);
  const loadAtStart = loadavg().map((x) => round(x));
  const cleanup: Array<() => Promise<unknown>> = [];
  const cleanUp = async () => {
    while (cleanup.length) await cleanup.pop()!().catch((error: Error) => console.error(`bench: cleanup: ${error.message}`));
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void cleanUp().finally(() => process.exit(130)));

  try {
    const profile = values.profile ? ["--cpu-prof", `--cpu-prof-dir=${resolve(values.profile)}`] : [];
    const { channel: gateway, ready, api, topicPrefix, dataDir, database } = await startBenchGateway("history", profile, cleanup);
    const gatewayPid = gateway.child.pid!;
    const storeClient = await MongoClient.connect(ready.mongodbUri!);
    cleanup.push(() => storeClient.close());
    const commands = storeClient.db(database).collection("commands");
    const keeper = new CollectionKeeper(commands);
    console.log(`indexes of commands: ${(await commands.listIndexes().toArray()).map((i) => i.name).join(", ")}`);
    const deviceIds = Array.from({ length: DEVICES }, (_, i) => `${topicPrefix}-d${i}`);
    for (const id of deviceIds) await api.registerDevice(id);
    const devices = deviceIds.map((id) => benchDevice(id, ready.mqttUrl, topicPrefix));
    cleanup.push(() => Promise.all(devices.map((d) => d.stop({ graceful: false }))));
    for (let i = 0; i < devices.length; i += 20) await Promise.all(devices.slice(i, i + 20).map((d) => d.start()));
    const side = await api.side(deviceIds[0]!);
    cleanup.push(() => side.close());

    const storePids = descendants(readAllProcStats(), process.pid, /^ferretdb/);
    const sqliteFile = join(dataDir, "ferretdb", `${database}.sqlite`);
    const fileMb = (suffix: string) => {
      try {
        return round(statSync(sqliteFile + suffix).size / 2 ** 20, 1);
      } catch {
        return 0;
      }
    };
    const ticks = clockTicksPerSecond();
    /** read(2)/pread(2) calls and bytes of FerretDB so far (/proc/<pid>/io): SQLite pages missed in its page cache come from the OS this way. */
    const storeReads = () => {
      let calls = 0;
      let bytes = 0;
      for (const pid of storePids) {
        const io = readFileSync(`/proc/${pid}/io`, "utf8");
        calls += Number(/^syscr: (\d+)$/m.exec(io)?.[1] ?? 0);
        bytes += Number(/^rchar: (\d+)$/m.exec(io)?.[1] ?? 0);
      }
      return { calls, bytes };
    };
    const run = async (keepSmall: boolean) => {
      const opsBefore = await gateway.request<StoreOpCounts>({ kind: "storeOps" });
      const cpuBefore = { store: readProcStats(storePids), gateway: readProcStats([gatewayPid]), at: performance.now() };
      const readsBefore = storeReads();
      if (keepSmall) keeper.start();
      const result = await runClosedLoop(side, deviceIds, concurrency, runMs);
      if (keepSmall) await keeper.stop();
      const elapsed = performance.now() - cpuBefore.at;
      const reads = storeReads();
      const ops = opsBetween(opsBefore, await gateway.request<StoreOpCounts>({ kind: "storeOps" }));
      const storeCpuPercent = cpuPercent(cpuBefore.store, readProcStats(storePids), elapsed, ticks);
      const gatewayCpuPercent = cpuPercent(cpuBefore.gateway, readProcStats([gatewayPid]), elapsed, ticks);
      const perCommand = (total: number) => round(total / Math.max(1, result.completed), 2);
      return {
        commandsPerSec: round(result.completed / (result.elapsedMs / 1000), 1),
        completed: result.completed,
        failed: result.failed,
        endedAs: result.endedAs,
        sendErrors: result.sendErrors,
        storeCpuPercent: round(storeCpuPercent, 1),
        gatewayCpuPercent: round(gatewayCpuPercent, 1),
        // CPU per command does not depend on how busy the shared machine is, as throughput does.
        storeCpuMsPerCommand: perCommand((storeCpuPercent / 100) * elapsed),
        gatewayCpuMsPerCommand: perCommand((gatewayCpuPercent / 100) * elapsed),
        storeReadCallsPerCommand: perCommand(reads.calls - readsBefore.calls),
        storeReadKbPerCommand: perCommand((reads.bytes - readsBefore.bytes) / 1024),
        loadAverage1: round(loadavg()[0]!),
        storeOpsPerCommand: round(Object.values(ops).reduce((a, b) => a + b, 0) / Math.max(1, result.completed)),
        storeOps: ops,
        sqliteMb: fileMb(""),
        walMb: fileMb("-wal"),
      };
    };
    type Run = Awaited<ReturnType<typeof run>>;
    const phase = async (name: string, keepSmall: boolean) => {
      const runs: Run[] = [];
      for (let i = 0; i < repeats; i++) {
        if (keepSmall) await keeper.clear();
        const r = await run(keepSmall);
        console.log(`${name} run ${i + 1}: ${JSON.stringify(r)}`);
        runs.push(r);
      }
      return { spread: spread(runs.map((r) => r.commandsPerSec)), runs };
    };

    await run(true); // warm-up, not counted
    const empty = await phase("empty", true);
    await keeper.clear();
    const seedStarted = performance.now();
    await seedFinalCommands(storeClient.db(database).collection("commands"), stored, deviceIds, new Date());
    const seedingSeconds = round((performance.now() - seedStarted) / 1000, 1);
    console.log(`seeded ${stored} in ${seedingSeconds} s; sqlite ${fileMb("")} MB, wal ${fileMb("-wal")} MB`);
    const history = await phase(`${stored} stored`, false);
    const result = {
      stored,
      concurrency,
      runSeconds: runMs / 1000,
      ratioToEmpty: round(history.spread.median / empty.spread.median),
      empty,
      history,
      seedingSeconds,
      loadAverage: { start: loadAtStart, end: loadavg().map((x) => round(x)) },
      at: new Date().toISOString(),
    };
    console.log(
      `empty ${empty.spread.median}/s (${empty.spread.min}–${empty.spread.max}), ${stored} stored ${history.spread.median}/s (${history.spread.min}–${history.spread.max}): ` +
        `ratio ${result.ratioToEmpty}; load average ${result.loadAverage.start.join(" ")} at the start, ${result.loadAverage.end.join(" ")} at the end`,
    );
    if (values.out) {
      mkdirSync(dirname(resolve(values.out)), { recursive: true });
      writeFileSync(resolve(values.out), `${JSON.stringify(result, null, 2)}\n`);
    }
  } finally {
    await cleanUp();
  }
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(`bench:history failed: ${error.message}`);
    process.exit(1);
  },
);
