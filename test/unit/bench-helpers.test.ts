import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { escapeXml, niceTicks, renderLineChart } from "../../bench/chart";
import { checkTargets, resultTable, shapeProblems, type BenchResult, type LevelResult } from "../../bench/result";
import { comparableTail, median, percentile, percentiles, saturated, spread, tailLabel } from "../../bench/stats";

describe("bench: percentiles", () => {
  it("takes the nearest rank", () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
    assert.equal(percentile(values, 50), 50);
    assert.equal(percentile(values, 95), 95);
    assert.equal(percentile(values, 99), 99);
    assert.equal(percentile(values, 100), 100);
    assert.equal(percentile(values, 0), 1);
  });

  it("handles one value, and none", () => {
    assert.deepEqual(percentiles([7]), { n: 1, p50: 7, p95: 7, p99: 7, max: 7 });
    assert.ok(Number.isNaN(percentile([], 50)));
  });

  it("sorts its input without changing it", () => {
    const values = [30, 10, 20];
    assert.deepEqual(percentiles(values), { n: 3, p50: 20, p95: 30, p99: 30, max: 30 });
    assert.deepEqual(values, [30, 10, 20]);
  });
});

describe("bench: repeated runs and tails", () => {
  it("takes the median of an odd and an even number of runs, whatever their order", () => {
    assert.equal(median([30, 10, 20]), 20);
    assert.equal(median([40, 10, 30, 20]), 25);
    assert.ok(Number.isNaN(median([])));
  });

  it("reports the spread of runs around their median", () => {
    assert.deepEqual(spread([90, 110, 100]), { median: 100, min: 90, max: 110, spreadPercent: 20 });
    assert.deepEqual(spread([5]), { median: 5, min: 5, max: 5, spreadPercent: 0 });
  });

  it("calls a tail of fewer than 1000 samples the max of n, and compares like with like", () => {
    const many = percentiles(Array.from({ length: 2000 }, (_, i) => i + 1));
    const few = percentiles(Array.from({ length: 200 }, (_, i) => i + 1));
    assert.equal(many.p99, 1980);
    assert.equal(tailLabel(many), "p99 (n=2000)");
    assert.equal(tailLabel(few), "max of 200");
    assert.deepEqual(comparableTail(many, many), { label: "p99", a: 1980, b: 1980 });
    // One side short of samples: both are compared by their maximum, never a p99 against a max.
    assert.deepEqual(comparableTail(many, few), { label: "max", a: 2000, b: 200 });
  });
});

describe("bench: saturation", () => {
  it("is not reached while throughput still grows by more than 10 %", () => {
    assert.equal(saturated([10, 20, 40]), false);
    assert.equal(saturated([10, 20, 21, 30]), false);
  });

  it("is reached after two levels without a 10 % gain over the best before them", () => {
    assert.equal(saturated([10, 20, 21, 19]), true);
    assert.equal(saturated([10, 20, 21]), false);
  });

  it("needs more levels than its patience", () => {
    assert.equal(saturated([10, 10]), false);
  });
});

describe("bench: SVG chart", () => {
  it("chooses round ticks that cover the data", () => {
    assert.deepEqual(niceTicks(0, 95), [0, 20, 40, 60, 80, 100]);
    assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    const ticks = niceTicks(0, 1234);
    assert.ok(ticks[ticks.length - 1]! >= 1234);
  });

  it("draws a path per series with more than one point, a legend entry per series, and escapes text", () => {
    const svg = renderLineChart(
      [
        { label: "gateway <p50>", color: "#1f6fd1", points: [{ x: 10, y: 5 }, { x: 20, y: 9 }] },
        { label: "floor", color: "#d1731f", dashed: true, points: [{ x: 30, y: 4 }, { x: 40, y: 6 }, { x: 50, y: NaN }] },
        { label: "single", color: "#000000", points: [{ x: 1, y: 1 }] },
      ],
      { title: "Latency & throughput", xLabel: "x", yLabel: "y" },
    );
    assert.match(svg, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.ok(svg.trimEnd().endsWith("</svg>"));
    assert.equal(svg.match(/<path /g)?.length, 2);
    assert.equal(svg.match(/stroke-dasharray/g)?.length, 2); // the floor's line and its legend entry
    assert.ok(svg.includes("gateway &lt;p50&gt;"));
    assert.ok(svg.includes("Latency &amp; throughput"));
    assert.ok(!svg.includes("NaN"));
  });

  it("escapes every XML special character", () => {
    assert.equal(escapeXml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;");
  });
});

describe("bench: result shape", () => {
  const level = (concurrency: number, commandsPerSec: number): LevelResult => ({
    concurrency,
    commandsPerSec,
    spread: { median: commandsPerSec, min: commandsPerSec - 1, max: commandsPerSec + 1, spreadPercent: 10 },
    completed: 30,
    failed: 0,
    latencyMs: { n: 30, p50: 1, p95: 2, p99: 3, max: 3 },
    storeOpsPerCommand: 4,
    storeOps: { insert: 30, findAndModify: 90 },
    documentsMax: 12,
    runs: [{ commandsPerSec, completed: 10, failed: 0, sendErrors: {}, endedAs: {}, storeOps: 40, documentsMax: 12 }],
  });
  const stage = { subscribers: 1000, deliveries: 4000, p50Ms: 20, p99Ms: 90, maxMs: 120, rssMb: 150, deviceUpdated: { deliveries: 2000, p50Ms: 30, p99Ms: 120, maxMs: 150 } };
  const latency = (p50: number, p99: number, n = 300) => ({ n, p50, p95: p50 * 2, p99, max: p99 + 5 });
  const result: BenchResult = {
    throughput: {
      gatewayCommandsPerSec: 120,
      floorCommandsPerSec: 100,
      limitCommandsPerSec: 200,
      ratio: 1.2,
      ratioToLimit: 0.6,
      concurrency: 16,
      repeats: 3,
      levels: { gateway: [level(1, 20), level(16, 120)], floor: [level(1, 25), level(16, 100)], limit: [level(1, 30), level(16, 200)] },
    },
    latencyMs: { gateway: latency(10, 30), floor: latency(8, 25), limit: latency(6, 20), concurrency: 1, measuredTo: "a subscriber" },
    storeOpsPerCommand: { gateway: 3.5, floor: 4, limit: 4, byCommand: { gateway: {}, floor: {}, limit: {} } },
    history: { seededCommands: 20_000, gatewayCommandsPerSec: 90, emptyCommandsPerSec: 120, ratioToEmpty: 0.75, concurrency: 16, spread: { median: 90, min: 85, max: 95, spreadPercent: 11 }, seedingSeconds: 4, documents: 20_100, runs: [] },
    idle: { seededCommands: 20_000, onlineDevices: 101, seconds: 15, storeCpuPercent: 1.5, gatewayCpuPercent: 0.8, storeProcesses: 1 },
    fanout: { ...stage, stages: [stage], measures: "transition → subscriber", deviceUpdatedMeasures: "state change → subscriber" },
    memory: { rssMbPer1000Subscriptions: 50, commands: 10_000, heapUsedMbBefore: 40, heapUsedMbAfter: 41, rssMbAfter: 140 },
    targets: [],
    store: "FerretDB",
    broker: "aedes",
    node: "v20",
    cpus: 2,
    cpuModel: "AMD EPYC",
    loadAverage: { start: [1, 1, 1], end: [2, 1, 1] },
    gatewayProcess: "child",
    quick: true,
    at: "2030-01-01T00:00:00.000Z",
  };
  result.targets = checkTargets(result);

  it("accepts a complete result", () => {
    assert.deepEqual(shapeProblems(result), []);
  });

  it("names every missing or non-finite field", () => {
    const broken = JSON.parse(JSON.stringify(result)) as Record<string, unknown>;
    delete (broken.throughput as Record<string, unknown>).floorCommandsPerSec;
    (broken.latencyMs as { gateway: { p99: unknown } }).gateway.p99 = null;
    delete (broken.idle as Record<string, unknown>).storeCpuPercent;
    broken.at = "yesterday";
    delete broken.store;
    assert.deepEqual(shapeProblems(broken), [
      "throughput.floorCommandsPerSec is not a finite number",
      "latencyMs.gateway.p99 is not a finite number",
      "idle.storeCpuPercent is not a finite number",
      "store is not a non-empty string",
      "at is not a date",
    ]);
  });

  it("judges every target of the store-path issue, with how far a miss is", () => {
    const byName = new Map(result.targets.map((t) => [t.name, t]));
    assert.equal(result.targets.length, 8);
    assert.equal(byName.get("throughput ≥ 1.0× floor (at 16 in flight)")?.pass, true);
    assert.equal(byName.get("throughput ≥ 0.7× limit (at 16 in flight)")?.pass, false);
    assert.match(byName.get("throughput ≥ 0.7× limit (at 16 in flight)")!.detail, /0\.60× against ≥ 0\.70× \(1\.17× short\)/);
    assert.equal(byName.get("throughput ≥ 100 commands/s")?.pass, true);
    // 300 samples a side: the maxima are compared, 35 against 30.
    assert.equal(byName.get("max latency at 1 in flight ≤ 1.3× floor")?.pass, true);
    assert.match(byName.get("max latency at 1 in flight ≤ 1.3× floor")!.detail, /^1\.17×/);
    assert.equal(byName.get("store commands per command ≤ 4")?.pass, true);
    assert.equal(byName.get("throughput with 20000 stored ≥ 0.8× empty")?.pass, false);
    assert.equal(byName.get("idle store CPU ≤ 5 % of a core")?.pass, true);
    assert.equal(byName.get("1000 subscribers p99 ≤ 250 ms")?.pass, true);
  });

  it("fails the fan-out target when the 1000-subscriber stage is missing", () => {
    const without = checkTargets({ ...result, fanout: { ...result.fanout, stages: [{ ...stage, subscribers: 100 }] } });
    assert.deepEqual(without[without.length - 1], { name: "1000 subscribers p99 ≤ 250 ms", pass: false, detail: "not measured" });
  });

  it("prints a table with the three sides, their ratios, n beside the percentiles, and the targets", () => {
    const table = resultTable(result);
    const lines = table.split("\n");
    assert.match(lines[0]!, /\| gateway .*\| floor .*\| limit .*\| gateway \/ floor .*\| gateway \/ limit/);
    const compared = lines.find((line) => line.includes("throughput at 16 in flight"));
    assert.ok(compared?.includes("◀ compared") && compared.includes("120 (119–121)") && compared.includes("1.20×") && compared.includes("0.60×"), compared);
    assert.ok(lines.some((line) => line.includes("latency p50") && line.includes("10.0, n=300")));
    assert.ok(lines.some((line) => line.includes("latency tail") && line.includes("35.0 max of 300") && line.includes("(maxs)")));
    assert.ok(lines.some((line) => line.includes("fan-out 1000 subscribers, commandUpdated, transition → subscriber") && line.includes("20.0 / 90.0, n=4000")));
    assert.ok(lines.some((line) => line.includes("fan-out 1000 subscribers, deviceUpdated, state change → subscriber") && line.includes("30.0 / 120, n=2000")));
    const rows = lines.slice(0, lines.indexOf(""));
    assert.equal(new Set(rows.map((line) => line.length)).size, 1, "columns are aligned");
    assert.ok(table.includes("MISS  throughput ≥ 0.7× limit"));
    assert.ok(table.includes("PASS  idle store CPU ≤ 5 % of a core: 1.50 % against ≤ 5.00 %"));
  });
});
