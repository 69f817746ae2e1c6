import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { MongoClient } from "mongodb";
import { benchDevice, forkChild, startBenchGateway, stopChild } from "./children";
import { runClosedLoop, type RunResult, type Side } from "./closed-loop";
import { CollectionKeeper } from "./collection-keeper";
import { ChildChannel } from "./ipc";
import { clockTicksPerSecond, cpuPercent, descendants, readAllProcStats, readMachineCpu, readProcStats, stealPercent } from "./proc-cpu";
import { readMetrics } from "../test/kit/metrics";
import { percentiles, round, spread, type Percentiles, type Spread } from "./stats";

const USAGE = "usage: npm run bench:tracing [-- --quick] [--together] [--aa] [--repeats N] [--sampler-ratio R] [--out FILE] [--profile DIR]";
/** The issue's target: tracing on costs at most this share of throughput and of p99. */
const TARGET_COST = 0.1;

const PLANS = {
  quick: { levels: [4], levelMs: 3_000, repeats: 3, warmupMs: 2_000, devices: 20 },
  // Short runs, many of them, alternating: the host's speed moves within seconds (steal from 1 to 35 %).
  // 42 a level: with 21, two untraced gateways (--aa) differed by up to 9 %, as much as the target.
  full: { levels: [1, 4, 16], levelMs: 2_000, repeats: 42, warmupMs: 4_000, devices: 50 },
};
type Mode = "off" | "on";
const MODES: Mode[] = ["off", "on"];

interface ModeLevel {
  /** Over the runs together: their completed commands over their time. */
  commandsPerSec: number;
  spread: Spread;
  completed: number;
  failed: number;
  /** Over every completed command of every run. */
  latencyMs: Percentiles;
  runs: number[];
  /** CPU time the gateway process (and, apart, its FerretDB) spent per completed command, over the runs together: what tracing adds. */
  gatewayCpuMsPerCommand: number;
  storeCpuMsPerCommand: number;
  /** CPU time of the OTLP sink (which shares the machine, unlike a collector elsewhere) per completed command. */
  sinkCpuMsPerCommand: number;
  /** Time the gateway spent in garbage collection per completed command (its /metrics, every kind). */
  gcMsPerCommand: number;
  /** The gateway's event-loop lag during the runs (its /metrics): 99th percentile of each run (min, median, max), and the largest. */
  loopLagP99Ms: Spread;
  loopLagMaxMs: number;
  /** The machine's CPU time the hypervisor took during the runs, percent (min, median, max): a loaded host makes every figure move. */
  stealPercent: Spread;
  /** Store commands the gateway sent per completed command, over the runs together: tracing must not change the store path. */
  storeCommandsPerCommand: number;
}

interface TracingBenchResult {
  at: string;
  command: string;
  cpus: number;
  cpuModel: string;
  node: string;
  store: string;
  broker: string;
  loadAverage: { start: number[]; end: number[] };
  plan: (typeof PLANS)["full"];
  /** Share of traces the traced gateway sampled (1: all). */
  samplerRatio: number;
  /** --aa: the "on" gateway ran with tracing off too, so each cost is the bench's own noise (what it cannot resolve). */
  aa: boolean;
  /** Costs: on against off over all runs of the level (they alternate, so both see the same drift of the machine). */
  levels: Array<{ concurrency: number; off: ModeLevel; on: ModeLevel; throughputCostPercent: number; p99CostPercent: number; gatewayCpuCostPercent: number }>;
  /** What the OTLP sink (a process of its own) received from the traced gateway. */
  spansExported: number;
  exportRequests: number;
  targets: Array<{ name: string; detail: string; pass: boolean }>;
}

/**
 * Tracing's cost (issue 13): two gateways as `npm start` runs them (embedded store and broker), one
 * with OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP sink in a child process, one without, loaded
 * in turn by the same closed loop (sendCommand → SUCCEEDED at a subscriber) in the same run, in short
 * runs that alternate (off on, on off, …). Writes bench/results/tracing-<time>.json.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      together: { type: "boolean", default: false },
      aa: { type: "boolean", default: false },
      repeats: { type: "string" },
      "sampler-ratio": { type: "string" },
      out: { type: "string" },
      profile: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return void console.log(USAGE);
  // The traced gateway samples this share of new traces (the SDK's parentbased_traceidratio); absent: every trace.
  const samplerRatio = values["sampler-ratio"] === undefined ? undefined : Number(values["sampler-ratio"]);
  if (samplerRatio !== undefined && !(samplerRatio > 0 && samplerRatio <= 1)) throw new Error(`--sampler-ratio must be in (0, 1]\n${USAGE}`);
  // --repeats: runs a level, each gateway 2 s a run (full plan): more of them narrow the pooled figures' noise.
  const repeats = values.repeats === undefined ? undefined : Number(values.repeats);
  if (repeats !== undefined && !(Number.isInteger(repeats) && repeats >= 1)) throw new Error(`--repeats must be a whole number of at least 1\n${USAGE}`);
  const plan = { ...(values.quick ? PLANS.quick : PLANS.full), ...(repeats !== undefined && { repeats }) };
  const together = values.together!;
  const aa = values.aa!;
  /** Whether `mode`'s gateway traces: the "on" one, unless --aa. */
  const traced = (mode: Mode) => mode === "on" && !aa;
  const at = new Date();
  const loadAtStart = loadavg().map((x) => round(x));
  const out = resolve(values.out ?? join("bench", "results", `tracing-${at.toISOString().replace(/[:.]/g, "-")}.json`));
  const cleanup: Array<() => Promise<unknown>> = [];
  const cleanUp = async () => {
    while (cleanup.length) await cleanup.pop()!().catch((error: Error) => console.error(`bench: cleanup: ${error.message}`));
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void cleanUp().finally(() => process.exit(130)));

  try {
    const sinkChannel = new ChildChannel(forkChild("otlp-sink-process.js", [], {}));
    cleanup.push(() => stopChild(sinkChannel));
    const otlpEndpoint = (await ChildChannel.ready(sinkChannel.child)).otlpEndpoint!;
    const gateways = {} as Record<Mode, { side: Side; deviceIds: string[]; keeper: CollectionKeeper; pids: { gateway: number[]; store: number[] }; channel: ChildChannel; url: string }>;
    for (const mode of MODES) {
      console.log(`starting the gateway with tracing ${traced(mode) ? "on" : "off"} (the "${mode}" one)`);
      // --profile: each gateway writes a CPU profile into DIR/<mode> when it stops.
      const profile = values.profile ? ["--cpu-prof", `--cpu-prof-dir=${resolve(values.profile, mode)}`] : [];
      const { channel, ready, api, topicPrefix: prefix, database } = await startBenchGateway(`tracing-${mode}`, profile, cleanup, {
        // Off: the variable is absent, as in a deployment without a collector.
        OTEL_EXPORTER_OTLP_ENDPOINT: traced(mode) ? otlpEndpoint : "",
        OTEL_SERVICE_NAME: "iot-gateway-bench",
        ...(traced(mode) && samplerRatio !== undefined ? { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: String(samplerRatio) } : {}),
      });
      const child = channel.child;
      const storeClient = await MongoClient.connect(ready.mongodbUri!);
      cleanup.push(() => storeClient.close());
      const deviceIds = Array.from({ length: plan.devices }, (_, i) => `${prefix}-d${i}`);
      for (const id of deviceIds) await api.registerDevice(id);
      const devices = deviceIds.map((id) => benchDevice(id, ready.mqttUrl, prefix));
      cleanup.push(() => Promise.all(devices.map((d) => d.stop({ graceful: false }))));
      for (let i = 0; i < devices.length; i += 20) await Promise.all(devices.slice(i, i + 20).map((d) => d.start()));
      const side = await api.side(deviceIds[0]!);
      cleanup.push(() => side.close());
      const pids = { gateway: [child.pid!], store: descendants(readAllProcStats(), child.pid!, /^ferretdb/) };
      gateways[mode] = { side, deviceIds, keeper: new CollectionKeeper(storeClient.db(database).collection("commands")), pids, channel, url: `http://127.0.0.1:${ready.port}` };
    }

    const ticks = clockTicksPerSecond();
    const watchedOf = (mode: Mode) => ({ ...gateways[mode].pids, sink: [sinkChannel.child.pid!] });
    /** Loads the gateways of `modes` at the same time, each with its own closed loop, and measures each. */
    const measure = async (modes: Mode[], concurrency: number, durationMs: number): Promise<Partial<Record<Mode, Measured>>> => {
      const storeCommands = async (mode: Mode) =>
        Object.values(await gateways[mode].channel.request<Record<string, number>>({ kind: "storeOps" })).reduce((sum, n) => sum + n, 0);
      const starts = await Promise.all(
        modes.map(async (mode) => {
          await gateways[mode].keeper.clear();
          gateways[mode].keeper.start();
          // Reading the metrics also starts the event-loop lag's histogram afresh (prom-client resets it).
          return { mode, storeCommands: await storeCommands(mode), runtime: await runtimeMetrics(gateways[mode].url) };
        }),
      );
      const machineBefore = readMachineCpu();
      const before = starts.map((start) => {
        const watched = watchedOf(start.mode);
        return { ...start, gateway: readProcStats(watched.gateway), store: readProcStats(watched.store), sink: readProcStats(watched.sink), at: performance.now() };
      });
      const runs = await Promise.all(modes.map((mode) => runClosedLoop(gateways[mode].side, gateways[mode].deviceIds, concurrency, durationMs)));
      // Every process's CPU is read as the runs end, before the requests below.
      const steal = stealPercent(machineBefore, readMachineCpu());
      const after = before.map(({ mode }) => {
        const watched = watchedOf(mode);
        return { gateway: readProcStats(watched.gateway), store: readProcStats(watched.store), sink: readProcStats(watched.sink), at: performance.now() };
      });
      const measured: Partial<Record<Mode, Measured>> = {};
      for (const [i, start] of before.entries()) {
        const { mode } = start;
        const run = runs[i]!;
        const end = after[i]!;
        const elapsedMs = end.at - start.at;
        const cpuMsPerCommand = (who: "gateway" | "store" | "sink") =>
          ((cpuPercent(start[who], end[who], elapsedMs, ticks) / 100) * elapsedMs) / Math.max(1, run.completed);
        const runtime = await runtimeMetrics(gateways[mode].url);
        measured[mode] = {
          run,
          gatewayCpuMs: cpuMsPerCommand("gateway"),
          storeCpuMs: cpuMsPerCommand("store"),
          sinkCpuMs: cpuMsPerCommand("sink"),
          gcMs: (runtime.gcMs - start.runtime.gcMs) / Math.max(1, run.completed),
          stealPercent: steal,
          storeCommands: ((await storeCommands(mode)) - start.storeCommands) / Math.max(1, run.completed),
          loopLagP99Ms: runtime.loopLagP99Ms,
          loopLagMaxMs: runtime.loopLagMaxMs,
        };
        await gateways[mode].keeper.stop();
      }
      return measured;
    };
    console.log("warming up");
    await measure(MODES, 4, plan.warmupMs);

    const levels: TracingBenchResult["levels"] = [];
    for (const concurrency of plan.levels) {
      const runs: Record<Mode, Measured[]> = { off: [], on: [] };
      for (let repeat = 0; repeat < plan.repeats; repeat++) {
        const turns = together ? [MODES] : (repeat % 2 === 0 ? MODES : [...MODES].reverse()).map((mode) => [mode]);
        for (const modes of turns) {
          const measured = await measure(modes, concurrency, plan.levelMs);
          for (const mode of modes) {
            const m = measured[mode]!;
            runs[mode].push(m);
            console.log(
              `${concurrency} in flight, tracing ${aa ? `off ("${mode}")` : mode}, run ${repeat + 1}: ${perSecond(m.run)} commands/s, gateway ${round(m.gatewayCpuMs)} ms CPU and ${round(m.storeCommands)} store commands a command, sink ${round(m.sinkCpuMs)} ms CPU, steal ${round(m.stealPercent, 1)} %`,
            );
          }
        }
      }
      // The machine's speed drifts by more than tracing costs, within seconds: the runs are short and
      // alternate, so over a level both modes sample the same machine, and each figure pools its runs.
      const off = modeLevel(runs.off);
      const on = modeLevel(runs.on);
      levels.push({
        concurrency,
        off,
        on,
        throughputCostPercent: round((1 - pooledRate(runs.on) / pooledRate(runs.off)) * 100, 1),
        p99CostPercent: round((on.latencyMs.p99 / off.latencyMs.p99 - 1) * 100, 1),
        gatewayCpuCostPercent: round((pooledPerCommand(runs.on, "gatewayCpuMs") / pooledPerCommand(runs.off, "gatewayCpuMs") - 1) * 100, 1),
      });
    }

    const exported = await sinkChannel.request<{ spans: number; requests: number }>({ kind: "spans" });
    const result: TracingBenchResult = {
      at: at.toISOString(),
      command: `npm run bench:tracing${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      node: process.version,
      store: "embedded FerretDB v1.24.2 on SQLite (each gateway its own)",
      broker: "embedded aedes (each gateway its own)",
      loadAverage: { start: loadAtStart, end: loadavg().map((x) => round(x)) },
      plan,
      samplerRatio: samplerRatio ?? 1,
      aa,
      levels,
      spansExported: exported.spans,
      exportRequests: exported.requests,
      targets: levels.flatMap((level) => [
        {
          name: `throughput cost at ${level.concurrency} in flight`,
          detail: `${level.on.commandsPerSec} vs ${level.off.commandsPerSec} commands/s: ${level.throughputCostPercent} % (target ≤ ${TARGET_COST * 100} %)`,
          pass: level.throughputCostPercent <= TARGET_COST * 100,
        },
        {
          name: `gateway CPU per command at ${level.concurrency} in flight`,
          detail: `${level.on.gatewayCpuMsPerCommand} vs ${level.off.gatewayCpuMsPerCommand} ms: ${level.gatewayCpuCostPercent} % (target ≤ ${TARGET_COST * 100} %)`,
          pass: level.gatewayCpuCostPercent <= TARGET_COST * 100,
        },
        {
          name: `p99 cost at ${level.concurrency} in flight`,
          detail: `${level.on.latencyMs.p99} vs ${level.off.latencyMs.p99} ms, over every command of the runs: ${level.p99CostPercent} % (target ≤ ${TARGET_COST * 100} %)`,
          pass: level.p99CostPercent <= TARGET_COST * 100,
        },
      ]),
    };
    // At a sampler ratio this low, no spans may be the sampler's doing; otherwise tracing was not on.
    if (!aa && result.spansExported === 0 && result.samplerRatio >= 0.01) throw new Error("the traced gateway exported no spans: tracing was not on");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);

    if (aa) console.log("\nA/A (--aa): both gateways ran with tracing off; each \"cost\" below is the bench's own noise");
    console.log("\n| in flight | commands/s off → on (runs' spread) | cost | p50 / p99 ms off → on | p99 cost | gateway CPU ms a command off → on | CPU cost | store commands a command off → on |");
    console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (const l of levels) {
      console.log(
        `| ${l.concurrency} | ${l.off.commandsPerSec} (${l.off.spread.min}–${l.off.spread.max}) → ${l.on.commandsPerSec} (${l.on.spread.min}–${l.on.spread.max}) | ${l.throughputCostPercent} % | ${l.off.latencyMs.p50} / ${l.off.latencyMs.p99} → ${l.on.latencyMs.p50} / ${l.on.latencyMs.p99} | ${l.p99CostPercent} % | ${l.off.gatewayCpuMsPerCommand} → ${l.on.gatewayCpuMsPerCommand} | ${l.gatewayCpuCostPercent} % | ${l.off.storeCommandsPerCommand} → ${l.on.storeCommandsPerCommand} |`,
      );
    }
    for (const l of levels) {
      const steal = (m: ModeLevel) => `${m.stealPercent.median} % (${m.stealPercent.min}–${m.stealPercent.max})`;
      console.log(`steal at ${l.concurrency} in flight: ${steal(l.off)} off, ${steal(l.on)} on (the hypervisor's share of the machine's CPU)`);
      const runtime = (m: ModeLevel) => `GC ${m.gcMsPerCommand} ms a command, event-loop lag p99 ${m.loopLagP99Ms.median} ms (${m.loopLagP99Ms.min}–${m.loopLagP99Ms.max}), max ${m.loopLagMaxMs} ms`;
      console.log(`gateway at ${l.concurrency} in flight: off ${runtime(l.off)}; on ${runtime(l.on)}`);
    }
    for (const t of result.targets) console.log(`${t.pass ? "PASS" : "MISS"} ${t.name}: ${t.detail}`);
    console.log(`spans exported: ${result.spansExported} in ${result.exportRequests} requests`);
    console.log(`load average (1/5/15 min): ${result.loadAverage.start.join(" ")} at the start, ${result.loadAverage.end.join(" ")} at the end`);
    console.log(`results: ${out}`);
  } finally {
    await cleanUp();
  }
}

/** The gateway's garbage-collection time so far and its event-loop lag since the last read, from its /metrics. */
async function runtimeMetrics(baseUrl: string): Promise<{ gcMs: number; loopLagP99Ms: number; loopLagMaxMs: number }> {
  const [gcSeconds, lagP99, lagMax] = await readMetrics(baseUrl, ["gateway_nodejs_gc_duration_seconds_sum", "gateway_nodejs_eventloop_lag_p99_seconds", "gateway_nodejs_eventloop_lag_max_seconds"]);
  return { gcMs: gcSeconds! * 1000, loopLagP99Ms: lagP99! * 1000, loopLagMaxMs: lagMax! * 1000 };
}

const perSecond = (run: RunResult) => round(run.completed / (run.elapsedMs / 1000), 1);

/** One run; CPU, garbage collection and store commands per completed command; the event loop's lag during it. */
type Measured = {
  run: RunResult;
  gatewayCpuMs: number;
  storeCpuMs: number;
  sinkCpuMs: number;
  gcMs: number;
  storeCommands: number;
  stealPercent: number;
  loopLagP99Ms: number;
  loopLagMaxMs: number;
};

/** Completed commands a second over the runs together. */
const pooledRate = (measured: Measured[]) =>
  measured.reduce((sum, m) => sum + m.run.completed, 0) / (measured.reduce((sum, m) => sum + m.run.elapsedMs, 0) / 1000);

/** A per-command figure over the runs together: each run weighed by its completed commands. */
const pooledPerCommand = (measured: Measured[], key: "gatewayCpuMs" | "storeCpuMs" | "sinkCpuMs" | "gcMs" | "storeCommands") =>
  measured.reduce((sum, m) => sum + m[key] * m.run.completed, 0) / Math.max(1, measured.reduce((sum, m) => sum + m.run.completed, 0));

function modeLevel(measured: Measured[]): ModeLevel {
  const runs = measured.map((m) => m.run);
  const throughputs = runs.map(perSecond);
  return {
    gatewayCpuMsPerCommand: round(pooledPerCommand(measured, "gatewayCpuMs")),
    storeCpuMsPerCommand: round(pooledPerCommand(measured, "storeCpuMs")),
    sinkCpuMsPerCommand: round(pooledPerCommand(measured, "sinkCpuMs")),
    gcMsPerCommand: round(pooledPerCommand(measured, "gcMs"), 3),
    loopLagP99Ms: spread(measured.map((m) => round(m.loopLagP99Ms, 1))),
    loopLagMaxMs: round(Math.max(...measured.map((m) => m.loopLagMaxMs)), 1),
    stealPercent: spread(measured.map((m) => round(m.stealPercent, 1))),
    storeCommandsPerCommand: round(pooledPerCommand(measured, "storeCommands")),
    commandsPerSec: round(pooledRate(measured), 1),
    spread: spread(throughputs),
    completed: runs.reduce((sum, run) => sum + run.completed, 0),
    failed: runs.reduce((sum, run) => sum + run.failed, 0),
    latencyMs: percentiles(runs.flatMap((run) => run.latenciesMs)),
    runs: throughputs,
  };
}

main().catch((error: Error) => {
  console.error(`bench:tracing failed: ${error.stack ?? error.message}`);
  process.exit(1);
});
