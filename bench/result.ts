import type { Percentiles } from "./stats";

/** One concurrency level of the throughput phase, for the gateway or the floor. */
export interface LevelResult {
  concurrency: number;
  commandsPerSec: number;
  completed: number;
  latencyMs: Percentiles;
}

export interface FanoutStage {
  subscribers: number;
  /** Events received by all subscribers together. */
  deliveries: number;
  p50Ms: number;
  p99Ms: number;
  /** Gateway RSS after a full GC with these subscriptions open. */
  rssMb: number;
}

/**
 * What `npm run bench` writes. The top-level fields named in the issue are fixed; the rest is detail.
 * `fanout` itself is the largest stage; every stage is in `fanout.stages`.
 */
export interface BenchResult {
  throughput: { gatewayCommandsPerSec: number; floorCommandsPerSec: number; ratio: number; levels: { gateway: LevelResult[]; floor: LevelResult[] } };
  latencyMs: { gateway: Percentiles; floor: Percentiles; concurrency: number };
  fanout: FanoutStage & { stages: FanoutStage[] };
  memory: {
    rssMbPer1000Subscriptions: number;
    commands: number;
    heapUsedMbBefore: number;
    heapUsedMbAfter: number;
    rssMbAfter: number;
  };
  store: string;
  broker: string;
  node: string;
  cpus: number;
  cpuModel: string;
  gatewayProcess: string;
  quick: boolean;
  at: string;
}

/** Whether a value has the shape (numbers finite where they are measured); the list of what is wrong. */
export function shapeProblems(value: unknown): string[] {
  const problems: string[] = [];
  const get = (path: string): unknown => path.split(".").reduce<unknown>((o, k) => (o && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined), value);
  const numbers = [
    "throughput.gatewayCommandsPerSec",
    "throughput.floorCommandsPerSec",
    ...["gateway", "floor"].flatMap((who) => ["p50", "p95", "p99"].map((p) => `latencyMs.${who}.${p}`)),
    "fanout.subscribers",
    "fanout.p50Ms",
    "fanout.p99Ms",
    "fanout.rssMb",
    "cpus",
  ];
  for (const path of numbers) if (typeof get(path) !== "number" || !Number.isFinite(get(path))) problems.push(`${path} is not a finite number`);
  for (const path of ["store", "broker", "node", "at"]) if (typeof get(path) !== "string" || get(path) === "") problems.push(`${path} is not a non-empty string`);
  if (typeof get("at") === "string" && Number.isNaN(Date.parse(get("at") as string))) problems.push("at is not a date");
  return problems;
}

/** The final table, as printed and as pasted into the README. */
export function resultTable(result: BenchResult): string {
  const t = result.throughput;
  const l = result.latencyMs;
  const rows: Array<[string, string, string, string]> = [
    ["throughput (commands/s)", fmt(t.gatewayCommandsPerSec), fmt(t.floorCommandsPerSec), `${fmt(t.ratio)} of floor`],
    [`latency p50 (ms, ${l.concurrency} in flight)`, fmt(l.gateway.p50), fmt(l.floor.p50), ratio(l.gateway.p50, l.floor.p50)],
    [`latency p95 (ms, ${l.concurrency} in flight)`, fmt(l.gateway.p95), fmt(l.floor.p95), ratio(l.gateway.p95, l.floor.p95)],
    [`latency p99 (ms, ${l.concurrency} in flight)`, fmt(l.gateway.p99), fmt(l.floor.p99), ratio(l.gateway.p99, l.floor.p99)],
    ...result.fanout.stages.map(
      (s): [string, string, string, string] => [`fan-out ${s.subscribers} subscribers: p50 / p99 (ms)`, `${fmt(s.p50Ms)} / ${fmt(s.p99Ms)}`, "", `gateway RSS ${fmt(s.rssMb)} MB`],
    ),
    ["RSS per 1000 subscriptions (MB)", fmt(result.memory.rssMbPer1000Subscriptions), "", ""],
    [
      `heap after GC, before / after ${result.memory.commands} commands (MB)`,
      `${fmt(result.memory.heapUsedMbBefore)} / ${fmt(result.memory.heapUsedMbAfter)}`,
      "",
      `RSS ${fmt(result.memory.rssMbAfter)} MB`,
    ],
  ];
  const header: [string, string, string, string] = ["", "gateway", "floor", "gateway / floor"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

function fmt(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function ratio(a: number, b: number): string {
  return b > 0 ? `${fmt(a / b)}×` : "";
}
