import { comparableTail, MIN_SAMPLES_FOR_P99, tailLabel, type Percentiles, type Spread } from "./stats";
import type { StoreOpCounts } from "./store-ops";

export const SIDES = ["gateway", "floor", "limit"] as const;
export type SideName = (typeof SIDES)[number];

/** One timed run of one side at one level. */
export interface RunSample {
  commandsPerSec: number;
  completed: number;
  failed: number;
  /** Refused sends by message (counted in `failed`). */
  sendErrors: Record<string, number>;
  /** Commands that ended other than SUCCEEDED, by status (counted in `failed`). */
  endedAs: Record<string, number>;
  /** Store commands the side issued during the run. */
  storeOps: number;
  /** Documents in `commands` during the run: the most seen by the clearer (every second) or at the end; null (NaN) in the history runs, which are not counted. */
  documentsMax: number;
}

/** One concurrency level of the throughput phase for one side: every run, their median and spread. */
export interface LevelResult {
  concurrency: number;
  /** Median of the runs. */
  commandsPerSec: number;
  spread: Spread;
  /** Sums over the runs. */
  completed: number;
  failed: number;
  /** Over every completed command of every run at this level. */
  latencyMs: Percentiles;
  storeOpsPerCommand: number;
  storeOps: StoreOpCounts;
  /** Largest `commands` collection any run at this level saw. */
  documentsMax: number;
  runs: RunSample[];
}

export interface FanoutStage {
  subscribers: number;
  /** Events received by all subscribers together: the n of the percentiles. */
  deliveries: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Gateway RSS after a full GC with these subscriptions (commandUpdated) open. */
  rssMb: number;
  /** The same connections subscribed to the device's `deviceUpdated` instead: one delivery per state change and subscriber. */
  deviceUpdated: { deliveries: number; p50Ms: number; p99Ms: number; maxMs: number };
}

export interface TargetCheck {
  name: string;
  /** The figure, the threshold and how far apart, in words. */
  detail: string;
  pass: boolean;
}

/**
 * What `npm run bench` writes. The top-level fields named in the issues are fixed; the rest is detail.
 * `fanout` itself is the largest stage; every stage is in `fanout.stages`.
 */
export interface BenchResult {
  throughput: {
    gatewayCommandsPerSec: number;
    floorCommandsPerSec: number;
    limitCommandsPerSec: number;
    /** gateway / floor, and gateway / limit, at `concurrency`. */
    ratio: number;
    ratioToLimit: number;
    /** The level the three sides are compared at: the highest run, where all of them had saturated (never each side's best). */
    concurrency: number;
    repeats: number;
    levels: Record<SideName, LevelResult[]>;
  };
  latencyMs: Record<SideName, Percentiles> & { concurrency: number; measuredTo: string };
  storeOpsPerCommand: Record<SideName, number> & { byCommand: Record<SideName, StoreOpCounts> };
  history: {
    seededCommands: number;
    gatewayCommandsPerSec: number;
    emptyCommandsPerSec: number;
    ratioToEmpty: number;
    concurrency: number;
    spread: Spread;
    seedingSeconds: number;
    documents: number;
    runs: RunSample[];
  };
  idle: { seededCommands: number; onlineDevices: number; seconds: number; storeCpuPercent: number; gatewayCpuPercent: number; storeProcesses: number };
  fanout: FanoutStage & { stages: FanoutStage[]; measures: string; deviceUpdatedMeasures: string };
  memory: {
    rssMbPer1000Subscriptions: number;
    commands: number;
    heapUsedMbBefore: number;
    heapUsedMbAfter: number;
    rssMbAfter: number;
  };
  targets: TargetCheck[];
  store: string;
  broker: string;
  node: string;
  cpus: number;
  cpuModel: string;
  /** os.loadavg() (1, 5, 15 min) when the run started and ended: the machine is shared. */
  loadAverage: { start: number[]; end: number[] };
  gatewayProcess: string;
  quick: boolean;
  at: string;
}

/** Whether a value has the issue's shape (numbers finite where they are measured); the list of what is wrong. */
export function shapeProblems(value: unknown): string[] {
  const problems: string[] = [];
  const get = (path: string): unknown => path.split(".").reduce<unknown>((o, k) => (o && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined), value);
  const numbers = [
    "throughput.gatewayCommandsPerSec",
    "throughput.floorCommandsPerSec",
    "throughput.limitCommandsPerSec",
    ...SIDES.flatMap((who) => ["n", "p50", "p95", "p99"].map((p) => `latencyMs.${who}.${p}`)),
    ...SIDES.map((who) => `storeOpsPerCommand.${who}`),
    "history.seededCommands",
    "history.gatewayCommandsPerSec",
    "history.ratioToEmpty",
    "idle.seededCommands",
    "idle.storeCpuPercent",
    "idle.gatewayCpuPercent",
    "fanout.subscribers",
    "fanout.p50Ms",
    "fanout.p99Ms",
    "fanout.rssMb",
    "fanout.deviceUpdated.p50Ms",
    "fanout.deviceUpdated.p99Ms",
    "cpus",
  ];
  for (const path of numbers) if (typeof get(path) !== "number" || !Number.isFinite(get(path))) problems.push(`${path} is not a finite number`);
  for (const path of ["store", "broker", "node", "at"]) if (typeof get(path) !== "string" || get(path) === "") problems.push(`${path} is not a non-empty string`);
  if (typeof get("at") === "string" && Number.isNaN(Date.parse(get("at") as string))) problems.push("at is not a date");
  return problems;
}

/** The targets of the store-path issue, judged on one result (every figure from the same run). */
export function checkTargets(result: Pick<BenchResult, "throughput" | "latencyMs" | "storeOpsPerCommand" | "history" | "idle" | "fanout">): TargetCheck[] {
  const t = result.throughput;
  const atLeast = (name: string, value: number, min: number, unit = "") =>
    ({ name, pass: value >= min, detail: `${fmt(value)}${unit} against ≥ ${fmt(min)}${unit}${value >= min ? "" : value > 0 ? ` (${fmt(min / value)}× short)` : " (nothing completed)"}` });
  const atMost = (name: string, value: number, max: number, unit = "") =>
    ({ name, pass: value <= max, detail: `${fmt(value)}${unit} against ≤ ${fmt(max)}${unit}${value <= max ? "" : ` (${fmt(value / max)}× over)`}` });
  const tail = comparableTail(result.latencyMs.gateway, result.latencyMs.floor);
  const largest = result.fanout.stages.find((s) => s.subscribers === 1000);
  const fanoutTail = largest && (largest.deliveries >= 1000 ? largest.p99Ms : largest.maxMs);
  return [
    atLeast(`throughput ≥ 1.0× floor (at ${t.concurrency} in flight)`, t.ratio, 1.0, "×"),
    atLeast(`throughput ≥ 0.7× limit (at ${t.concurrency} in flight)`, t.ratioToLimit, 0.7, "×"),
    atLeast("throughput ≥ 100 commands/s", t.gatewayCommandsPerSec, 100, "/s"),
    atMost(`${tail.label} latency at ${result.latencyMs.concurrency} in flight ≤ 1.3× floor`, tail.a / tail.b, 1.3, "×"),
    atMost("store commands per command ≤ 4", result.storeOpsPerCommand.gateway, 4),
    atLeast(`throughput with ${result.history.seededCommands} stored ≥ 0.8× empty`, result.history.ratioToEmpty, 0.8, "×"),
    atMost("idle store CPU ≤ 5 % of a core", result.idle.storeCpuPercent, 5, " %"),
    largest && fanoutTail !== undefined
      ? atMost(`1000 subscribers ${largest.deliveries >= 1000 ? "p99" : "max"} ≤ 250 ms`, fanoutTail, 250, " ms")
      : { name: "1000 subscribers p99 ≤ 250 ms", pass: false, detail: "not measured" },
  ];
}

/** The final table, as printed and as pasted into the README, then the targets. */
export function resultTable(result: BenchResult): string {
  const t = result.throughput;
  const l = result.latencyMs;
  const levelOf = (side: SideName, concurrency: number) => t.levels[side].find((x) => x.concurrency === concurrency);
  const rate = (level: LevelResult | undefined) => (level ? `${fmt(level.commandsPerSec)} (${fmt(level.spread.min)}–${fmt(level.spread.max)})` : "n/a");
  const ratios = (g: number, f: number, lim: number): [string, string] => [ratio(g, f), ratio(g, lim)];
  const rows: string[][] = [
    ...t.levels.gateway.map((g) => {
      const f = levelOf("floor", g.concurrency);
      const lim = levelOf("limit", g.concurrency);
      const mark = g.concurrency === t.concurrency ? " ◀ compared" : "";
      return [`throughput at ${g.concurrency} in flight (commands/s, median of ${g.runs.length} (min–max))${mark}`, rate(g), rate(f), rate(lim), ...ratios(g.commandsPerSec, f?.commandsPerSec ?? NaN, lim?.commandsPerSec ?? NaN)];
    }),
    [`latency p50, n (ms, ${l.concurrency} in flight, to SUCCEEDED at a subscriber)`, ...SIDES.map((s) => `${fmt(l[s].p50)}, n=${l[s].n}`), ...ratios(l.gateway.p50, l.floor.p50, l.limit.p50)],
    [`latency p95 (ms, ${l.concurrency} in flight)`, ...SIDES.map((s) => fmt(l[s].p95)), ...ratios(l.gateway.p95, l.floor.p95, l.limit.p95)],
    (() => {
      const tf = comparableTail(l.gateway, l.floor);
      const tl = comparableTail(l.gateway, l.limit);
      const cell = (p: Percentiles) => `${fmt(p.n >= MIN_SAMPLES_FOR_P99 ? p.p99 : p.max)} ${tailLabel(p)}`;
      return [`latency tail (ms, ${l.concurrency} in flight)`, ...SIDES.map((s) => cell(l[s])), `${ratio(tf.a, tf.b)} (${tf.label}s)`, `${ratio(tl.a, tl.b)} (${tl.label}s)`];
    })(),
    ["failed commands, all levels (ended otherwise, lost, or refused)", ...SIDES.map((s) => String(t.levels[s].reduce((sum, x) => sum + x.failed, 0))), "", ""],
    ["store commands per completed command", ...SIDES.map((s) => fmt(result.storeOpsPerCommand[s])), "", ""],
    ["largest `commands` collection during the compared level (documents)", ...SIDES.map((s) => String(levelOf(s, t.concurrency)?.documentsMax ?? "n/a")), "", ""],
    [
      `throughput with ${result.history.seededCommands} final commands stored (${result.history.concurrency} in flight, median (min–max))`,
      `${fmt(result.history.gatewayCommandsPerSec)} (${fmt(result.history.spread.min)}–${fmt(result.history.spread.max)}), ${result.history.runs.reduce((sum, r) => sum + r.failed, 0)} failed`,
      "",
      "",
      `${fmt(result.history.ratioToEmpty)} of empty (${fmt(result.history.emptyCommandsPerSec)})`,
      "",
    ],
    [`idle CPU, ${result.idle.seconds} s, ${result.idle.seededCommands} stored, ${result.idle.onlineDevices} devices online (% of a core)`, `${fmt(result.idle.gatewayCpuPercent)} gateway, ${fmt(result.idle.storeCpuPercent)} store`, "", "", "", ""],
    ...result.fanout.stages.map((s) => [
      `fan-out ${s.subscribers} subscribers, commandUpdated, transition → subscriber: p50 / ${s.deliveries >= 1000 ? "p99" : "max"} (ms)`,
      `${fmt(s.p50Ms)} / ${fmt(s.deliveries >= 1000 ? s.p99Ms : s.maxMs)}, n=${s.deliveries}`,
      "",
      "",
      `gateway RSS ${fmt(s.rssMb)} MB`,
      "",
    ]),
    ...result.fanout.stages.map((s) => [
      `fan-out ${s.subscribers} subscribers, deviceUpdated, state change → subscriber: p50 / ${s.deviceUpdated.deliveries >= 1000 ? "p99" : "max"} (ms)`,
      `${fmt(s.deviceUpdated.p50Ms)} / ${fmt(s.deviceUpdated.deliveries >= 1000 ? s.deviceUpdated.p99Ms : s.deviceUpdated.maxMs)}, n=${s.deviceUpdated.deliveries}`,
      "",
      "",
      "",
      "",
    ]),
    ["RSS per 1000 subscriptions (MB)", fmt(result.memory.rssMbPer1000Subscriptions), "", "", "", ""],
    [
      `heap after GC, before / after ${result.memory.commands} commands (MB)`,
      `${fmt(result.memory.heapUsedMbBefore)} / ${fmt(result.memory.heapUsedMbAfter)}`,
      "",
      "",
      `RSS ${fmt(result.memory.rssMbAfter)} MB`,
      "",
    ],
  ];
  const header = ["", "gateway", "floor", "limit", "gateway / floor", "gateway / limit"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  const table = [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
  const targets = result.targets.map((c) => `${c.pass ? "PASS" : "MISS"}  ${c.name}: ${c.detail}`).join("\n");
  return `${table}\n\nTargets (store-path issue), this run:\n${targets}`;
}

function fmt(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function ratio(a: number, b: number): string {
  return b > 0 && Number.isFinite(a) ? `${fmt(a / b)}×` : "";
}
