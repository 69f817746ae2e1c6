import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { MongoClient } from "mongodb";
import { createTopics } from "../src/mqtt/topics";
import { renderLineChart } from "./chart";
import { benchDevice, cpuModel, forkChild, startBenchGateway, stopChild } from "./children";
import { runClosedLoop, type RunResult, type Side } from "./closed-loop";
import { CollectionKeeper } from "./collection-keeper";
import { DEVICE_FANOUT_MEASURES, Fanout, FANOUT_MEASURES } from "./fanout";
import { FloorLink } from "./floor-link";
import { seedFinalCommands } from "./history";
import { ChildChannel, type MemorySample } from "./ipc";
import { clockTicksPerSecond, cpuPercent, descendants, readAllProcStats, readProcStats } from "./proc-cpu";
import { Progress } from "./progress";
import { checkTargets, resultTable, shapeProblems, SIDES, type BenchResult, type FanoutStage, type LevelResult, type RunSample, type SideName } from "./result";
import { percentiles, round, saturated, spread } from "./stats";
import { addOps, opsBetween, totalOps, type StoreOpCounts } from "./store-ops";

const USAGE = "usage: npm run bench [-- --quick] [--out FILE] [--broker aedes|mosquitto] [--profile DIR]";
const MB = 1024 * 1024;

interface Plan {
  levels: number[];
  levelMs: number;
  /** Runs of each side at each level (B2: median and spread of at least three). */
  repeats: number;
  warmupMs: number;
  /** Gateway devices (all online during the idle phase), and as many for the floor. */
  devices: number;
  fanout: number[];
  fanoutCommands: number;
  /** Commands the gateway completes before its heap is measured again, within `memoryMaxMs`. */
  memoryCommands: number;
  memoryMaxMs: number;
  latencyConcurrency: number;
  historyCommands: number;
  idleMs: number;
}

// Levels must last several latencies to mean anything; the closed loop saturates the embedded store early.
const PLANS: Record<"quick" | "full", Plan> = {
  quick: {
    levels: [1, 4, 16],
    levelMs: 3_000,
    repeats: 3,
    warmupMs: 1_500,
    devices: 100,
    fanout: [1, 100, 1000],
    fanoutCommands: 6,
    memoryCommands: 0,
    memoryMaxMs: 0,
    latencyConcurrency: 1,
    historyCommands: 20_000,
    idleMs: 15_000,
  },
  full: {
    levels: [1, 2, 4, 8, 16, 32],
    levelMs: 6_000,
    repeats: 3,
    warmupMs: 4_000,
    devices: 100,
    fanout: [1, 100, 1000],
    fanoutCommands: 25,
    memoryCommands: 10_000,
    memoryMaxMs: 60_000,
    latencyConcurrency: 1,
    historyCommands: 100_000,
    idleMs: 60_000,
  },
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      broker: { type: "string", default: "aedes" },
      profile: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.broker !== "aedes" && values.broker !== "mosquitto") throw new Error(`--broker must be aedes or mosquitto\n${USAGE}`);
  const plan = PLANS[values.quick ? "quick" : "full"];
  const at = new Date();
  const loadAtStart = loadavg().map((x) => round(x));
  const out = resolve(values.out ?? join("bench", "results", `${at.toISOString().replace(/[:.]/g, "-")}.json`));
  const runId = Math.random().toString(36).slice(2, 8);
  const mosquittoUrl = process.env.BENCH_MOSQUITTO_URL ?? "mqtt://127.0.0.1:1883";
  const cleanup: Array<() => Promise<unknown>> = [];
  const progress = new Progress(8 + plan.levels.length * SIDES.length * plan.repeats + plan.fanout.length + plan.repeats);
  let step = 0;
  const phase = (name: string) => progress.update(step++, name);
  const cleanUp = async () => {
    while (cleanup.length) await cleanup.pop()!().catch((error: Error) => console.error(`bench: cleanup: ${error.message}`));
  };
  // Ctrl-C or a kill: stop the children and the store before going.
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void cleanUp().finally(() => process.exit(130)));

  try {
    phase("starting the gateway, then the floor on the gateway's database");
    const brokerEnv: Record<string, string> = values.broker === "mosquitto" ? { MQTT_URL: mosquittoUrl } : {};
    const profile = values.profile ? ["--cpu-prof", `--cpu-prof-dir=${resolve(values.profile)}`] : [];
    // The gateway starts the embedded store as `npm start` does (URL, pragmas, SQLite index, version guard).
    // The floor and the limit write to its database's `commands`, so they get the store set-up the gateway's start made.
    const { channel: gateway, ready: gatewayReady, api, topicPrefix, database } = await startBenchGateway("gateway", profile, cleanup, brokerEnv);
    const gatewayChild = gateway.child;
    const storeUri = gatewayReady.mongodbUri!;
    // The bench's own connection (not counted): clearing, counting and seeding `commands`.
    const storeClient = await MongoClient.connect(storeUri);
    cleanup.push(() => storeClient.close());
    const commands = storeClient.db(database).collection("commands");
    const keeper = new CollectionKeeper(commands);
    // Started after the gateway's start-up made its collections and indexes (and whatever else its store set-up does).
    const floorTopics = createTopics(`bench-${runId}-f`);
    const floorChild = forkChild("floor-process.js", ["--expose-gc"], {
      MONGODB_URI: storeUri,
      MONGODB_DB: database,
      MQTT_TOPIC_PREFIX: floorTopics.prefix,
      ...brokerEnv,
    });
    const floorReady = await ChildChannel.ready(floorChild);
    const floor = new ChildChannel(floorChild);
    cleanup.push(() => stopChild(floor));

    phase("registering and connecting devices");
    const gatewayDeviceIds = Array.from({ length: plan.devices }, (_, i) => `bench-${runId}-g${i}`);
    const floorDeviceIds = Array.from({ length: plan.devices }, (_, i) => `bench-${runId}-f${i}`);
    const fanoutDeviceId = `bench-${runId}-fan`;
    for (const id of [...gatewayDeviceIds, fanoutDeviceId]) await api.registerDevice(id);
    const devices = [
      ...[...gatewayDeviceIds, fanoutDeviceId].map((id) => benchDevice(id, gatewayReady.mqttUrl, topicPrefix)),
      ...floorDeviceIds.map((id) => benchDevice(id, floorReady.mqttUrl, floorTopics.prefix)),
    ];
    cleanup.push(() => Promise.all(devices.map((d) => d.stop({ graceful: false }))));
    // A few at a time: each connection is a presence write in the gateway, and a device gives up on a CONNACK after 5 s.
    for (let i = 0; i < devices.length; i += 20) await Promise.all(devices.slice(i, i + 20).map((d) => d.start()));

    const gatewaySide = await api.side(gatewayDeviceIds[0]!);
    cleanup.push(() => gatewaySide.close());
    const floorLink = await FloorLink.open(floorReady.mqttUrl, floorReady.benchCredentials ?? {}, floorTopics);
    cleanup.push(() => floorLink.close());
    const sides: Record<SideName, { side: Side; deviceIds: string[]; child: ChildChannel }> = {
      gateway: { side: gatewaySide, deviceIds: gatewayDeviceIds, child: gateway },
      floor: { side: floorLink.side("floor"), deviceIds: floorDeviceIds, child: floor },
      limit: { side: floorLink.side("limit"), deviceIds: floorDeviceIds, child: floor },
    };

    /** One timed run of a side, with its store commands and (if `keepSmall`) the collection kept small. */
    const measure = async (who: SideName, concurrency: number, durationMs: number, keepSmall = true) => {
      const { side, deviceIds, child } = sides[who];
      const opsBefore = await child.request<StoreOpCounts>({ kind: "storeOps" });
      if (keepSmall) keeper.start();
      const run = await runClosedLoop(side, deviceIds, concurrency, durationMs);
      // Not counted with history stored: on FerretDB/SQLite a count decodes the whole collection, which an overloaded store takes minutes over.
      const documentsMax = keepSmall ? await keeper.stop() : NaN;
      const ops = opsBetween(opsBefore, await child.request<StoreOpCounts>({ kind: "storeOps" }));
      return { run, ops, documentsMax };
    };

    phase("warming up");
    for (const who of SIDES) await measure(who, 4, plan.warmupMs);
    await keeper.clear();
    const heapBefore = await gateway.request<MemorySample>({ kind: "memory" });
    let commandsSinceHeap = 0;

    const levels: Record<SideName, LevelResult[]> = { gateway: [], floor: [], limit: [] };
    for (const concurrency of plan.levels) {
      const runs: Record<SideName, Measured[]> = { gateway: [], floor: [], limit: [] };
      for (let repeat = 0; repeat < plan.repeats; repeat++) {
        // Each repeat starts with another side, so none always runs first (or right after the store was cleared).
        for (const who of rotate(SIDES, repeat)) {
          await keeper.clear();
          phase(`throughput: ${who}, ${concurrency} in flight, run ${repeat + 1} of ${plan.repeats}`);
          const measured = await measure(who, concurrency, plan.levelMs);
          runs[who].push(measured);
          if (who === "gateway") commandsSinceHeap += measured.run.completed;
        }
      }
      for (const who of SIDES) levels[who].push(levelResult(concurrency, runs[who]));
      if (SIDES.every((who) => saturated(levels[who].map((l) => l.commandsPerSec)))) break;
    }
    // Compared at the highest level run, where every side had saturated: one level for all, never each side's best.
    const compared = levels.gateway[levels.gateway.length - 1]!.concurrency;
    const levelAt = (who: SideName, concurrency: number) => levels[who].find((l) => l.concurrency === concurrency)!;

    if (commandsSinceHeap < plan.memoryCommands) {
      phase(`memory: up to ${plan.memoryCommands} commands`);
      const until = Date.now() + plan.memoryMaxMs;
      while (commandsSinceHeap < plan.memoryCommands && Date.now() < until) {
        await keeper.clear();
        commandsSinceHeap += (await measure("gateway", compared, 5_000)).run.completed;
      }
    }
    const heapAfter = await gateway.request<MemorySample>({ kind: "memory" });

    await keeper.clear();
    const memoryBeforeFanout = await gateway.request<MemorySample>({ kind: "memory" });
    const fanout = new Fanout(api, fanoutDeviceId);
    cleanup.push(() => fanout.close());
    const stages: FanoutStage[] = [];
    for (const subscribers of plan.fanout) {
      phase(`fan-out: ${subscribers} subscribers`);
      await fanout.grow(subscribers);
      await fanout.subscribe("commandUpdated");
      const p = percentiles(await fanout.measure(plan.fanoutCommands));
      const memory = await gateway.request<MemorySample>({ kind: "memory" });
      // The same connections, subscribed to the device instead.
      await fanout.subscribe("deviceUpdated");
      const d = percentiles(await fanout.measure(plan.fanoutCommands));
      stages.push({
        subscribers,
        deliveries: p.n,
        p50Ms: p.p50,
        p99Ms: p.p99,
        maxMs: p.max,
        rssMb: round(memory.rss / MB),
        deviceUpdated: { deliveries: d.n, p50Ms: d.p50, p99Ms: d.p99, maxMs: d.max },
      });
    }
    await fanout.close();
    const largest = stages[stages.length - 1]!;

    phase(`history: storing ${plan.historyCommands} final commands`);
    await keeper.clear();
    const documentsWithHistory = (await keeper.count()) + plan.historyCommands;
    const seedStarted = performance.now();
    await seedFinalCommands(storeClient.db(database).collection("commands"), plan.historyCommands, gatewayDeviceIds, new Date());
    const seedingSeconds = round((performance.now() - seedStarted) / 1000, 1);
    const historyRuns: RunSample[] = [];
    for (let repeat = 0; repeat < plan.repeats; repeat++) {
      phase(`history: gateway, ${compared} in flight, run ${repeat + 1} of ${plan.repeats}`);
      historyRuns.push(runSample(await measure("gateway", compared, plan.levelMs, false)));
    }
    const historySpread = spread(historyRuns.map((r) => r.commandsPerSec));
    const emptyRate = levelAt("gateway", compared).commandsPerSec;

    phase(`idle: ${plan.idleMs / 1000} s with ${documentsWithHistory} commands stored and ${gatewayDeviceIds.length + 1} devices online`);
    await sleep(2_000); // the last run's stragglers (acks, lease releases) are not idleness
    const storePids = descendants(readAllProcStats(), process.pid, /^ferretdb/);
    const idlePids = { store: storePids, gateway: [gatewayChild.pid!] };
    const idleBefore = { store: readProcStats(idlePids.store), gateway: readProcStats(idlePids.gateway), at: performance.now() };
    await sleep(plan.idleMs);
    const idleElapsed = performance.now() - idleBefore.at;
    const ticks = clockTicksPerSecond();
    const idleCpu = (who: "store" | "gateway") => round(cpuPercent(idleBefore[who], readProcStats(idlePids[who]), idleElapsed, ticks), 1);

    const byCommand = Object.fromEntries(SIDES.map((who) => [who, levels[who].reduce<StoreOpCounts>((sum, l) => addOps(sum, l.storeOps), {})])) as Record<SideName, StoreOpCounts>;
    const opsPerCommand = (who: SideName) => round(totalOps(byCommand[who]) / levels[who].reduce((sum, l) => sum + l.completed, 0));
    const latencyLevel = (who: SideName) => levelAt(who, plan.latencyConcurrency).latencyMs;
    const measured: Omit<BenchResult, "targets"> = {
      throughput: {
        gatewayCommandsPerSec: levelAt("gateway", compared).commandsPerSec,
        floorCommandsPerSec: levelAt("floor", compared).commandsPerSec,
        limitCommandsPerSec: levelAt("limit", compared).commandsPerSec,
        ratio: round(levelAt("gateway", compared).commandsPerSec / levelAt("floor", compared).commandsPerSec),
        ratioToLimit: round(levelAt("gateway", compared).commandsPerSec / levelAt("limit", compared).commandsPerSec),
        concurrency: compared,
        repeats: plan.repeats,
        levels,
      },
      latencyMs: {
        gateway: latencyLevel("gateway"),
        floor: latencyLevel("floor"),
        limit: latencyLevel("limit"),
        concurrency: plan.latencyConcurrency,
        measuredTo: "from the send in the bench process (HTTP mutation; MQTT request to the floor) to the arrival of SUCCEEDED at a subscriber in the bench process (graphql-ws; MQTT)",
      },
      storeOpsPerCommand: { gateway: opsPerCommand("gateway"), floor: opsPerCommand("floor"), limit: opsPerCommand("limit"), byCommand },
      history: {
        seededCommands: plan.historyCommands,
        gatewayCommandsPerSec: historySpread.median,
        emptyCommandsPerSec: emptyRate,
        ratioToEmpty: round(historySpread.median / emptyRate),
        concurrency: compared,
        spread: historySpread,
        seedingSeconds,
        documents: documentsWithHistory,
        runs: historyRuns,
      },
      idle: {
        seededCommands: plan.historyCommands,
        onlineDevices: gatewayDeviceIds.length + 1,
        seconds: round(idleElapsed / 1000, 1),
        storeCpuPercent: idleCpu("store"),
        gatewayCpuPercent: idleCpu("gateway"),
        storeProcesses: storePids.length,
      },
      fanout: { ...largest, stages, measures: FANOUT_MEASURES, deviceUpdatedMeasures: DEVICE_FANOUT_MEASURES },
      memory: {
        rssMbPer1000Subscriptions: round(((largest.rssMb - memoryBeforeFanout.rss / MB) * 1000) / largest.subscribers),
        commands: commandsSinceHeap,
        heapUsedMbBefore: round(heapBefore.heapUsed / MB),
        heapUsedMbAfter: round(heapAfter.heapUsed / MB),
        rssMbAfter: round(heapAfter.rss / MB),
      },
      store: "FerretDB v1.24 (SQLite), embedded, started as `npm start` starts it; floor and limit on the gateway's database",
      broker: values.broker === "mosquitto" ? `Mosquitto (${mosquittoUrl})` : "aedes, embedded in the gateway (the floor: its own aedes)",
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpuModel(),
      loadAverage: { start: loadAtStart, end: loadavg().map((x) => round(x)) },
      gatewayProcess: "child process (node --expose-gc dist/bench/gateway-process.js); load generator and devices in the bench process",
      quick: values.quick,
      at: at.toISOString(),
    };
    const result: BenchResult = { ...measured, targets: checkTargets(measured) };
    const problems = shapeProblems(result);
    if (problems.length) throw new Error(`result has the wrong shape: ${problems.join("; ")}`);

    phase("writing results");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    const svg = out.replace(/\.json$/, "") + ".svg";
    writeFileSync(svg, latencyChart(result));
    progress.done();
    console.log(resultTable(result));
    console.log(`\n${result.cpus} × ${result.cpuModel}, node ${result.node}, ${result.store}, ${result.broker}`);
    console.log(`load average (1/5/15 min): ${result.loadAverage.start.join(" ")} at the start, ${result.loadAverage.end.join(" ")} at the end`);
    console.log(`results: ${out}\nchart:   ${svg}`);
  } finally {
    progress.done();
    await cleanUp();
  }
}

const commandsPerSec = (run: RunResult) => round(run.completed / (run.elapsedMs / 1000), 1);

/** `items` starting at position `by` (wrapping round). */
function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

type Measured = { run: RunResult; ops: StoreOpCounts; documentsMax: number };

const runSample = ({ run, ops, documentsMax }: Measured): RunSample => ({
  commandsPerSec: commandsPerSec(run),
  completed: run.completed,
  failed: run.failed,
  sendErrors: run.sendErrors,
  endedAs: run.endedAs,
  storeOps: totalOps(ops),
  documentsMax,
});

function levelResult(concurrency: number, runs: Measured[]): LevelResult {
  const samples = runs.map(runSample);
  const completed = samples.reduce((sum, s) => sum + s.completed, 0);
  const storeOps = runs.reduce<StoreOpCounts>((sum, r) => addOps(sum, r.ops), {});
  const rates = spread(samples.map((s) => s.commandsPerSec));
  return {
    concurrency,
    commandsPerSec: rates.median,
    spread: rates,
    completed,
    failed: samples.reduce((sum, s) => sum + s.failed, 0),
    latencyMs: percentiles(runs.flatMap((r) => r.run.latenciesMs)),
    storeOpsPerCommand: round(totalOps(storeOps) / completed),
    storeOps,
    documentsMax: Math.max(...samples.map((s) => s.documentsMax)),
    runs: samples,
  };
}

function latencyChart(result: BenchResult): string {
  const points = (rows: LevelResult[], key: "p50" | "p99") => rows.map((l) => ({ x: l.commandsPerSec, y: l.latencyMs[key], note: key === "p99" ? `c${l.concurrency}` : undefined }));
  const colors: Record<SideName, string> = { gateway: "#1f6fd1", floor: "#d1731f", limit: "#2e9e44" };
  return renderLineChart(
    SIDES.flatMap((who) => [
      { label: `${who} p50`, color: colors[who], points: points(result.throughput.levels[who], "p50") },
      { label: `${who} p99`, color: colors[who], dashed: true, points: points(result.throughput.levels[who], "p99") },
    ]),
    {
      title: `Latency against throughput (${result.cpus} × ${result.cpuModel}, node ${result.node})`,
      xLabel: "commands per second, median of runs (c = commands in flight)",
      yLabel: "send to SUCCEEDED at a subscriber (ms)",
    },
  );
}

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(`bench failed: ${error.message}`);
    process.exit(1);
  },
);
