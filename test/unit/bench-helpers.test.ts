import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { escapeXml, niceTicks, renderLineChart } from "../../bench/chart";
import { resultTable, shapeProblems, type BenchResult } from "../../bench/result";
import { percentile, percentiles, saturated } from "../../bench/stats";

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
    assert.deepEqual(percentiles([7]), { p50: 7, p95: 7, p99: 7 });
    assert.ok(Number.isNaN(percentile([], 50)));
  });

  it("sorts its input without changing it", () => {
    const values = [30, 10, 20];
    assert.deepEqual(percentiles(values), { p50: 20, p95: 30, p99: 30 });
    assert.deepEqual(values, [30, 10, 20]);
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
  const level = (concurrency: number, commandsPerSec: number) => ({ concurrency, commandsPerSec, completed: 10, latencyMs: { p50: 1, p95: 2, p99: 3 } });
  const stage = { subscribers: 1000, deliveries: 4000, p50Ms: 20, p99Ms: 90, rssMb: 150 };
  const result: BenchResult = {
    throughput: { gatewayCommandsPerSec: 20, floorCommandsPerSec: 25, ratio: 0.8, levels: { gateway: [level(1, 20)], floor: [level(1, 25)] } },
    latencyMs: { gateway: { p50: 10, p95: 20, p99: 30 }, floor: { p50: 8, p95: 15, p99: 25 }, concurrency: 1 },
    fanout: { ...stage, stages: [stage] },
    memory: { rssMbPer1000Subscriptions: 50, commands: 10_000, heapUsedMbBefore: 40, heapUsedMbAfter: 41, rssMbAfter: 140 },
    store: "FerretDB",
    broker: "aedes",
    node: "v20",
    cpus: 2,
    cpuModel: "AMD EPYC",
    gatewayProcess: "child",
    quick: true,
    at: "2030-01-01T00:00:00.000Z",
  };

  it("accepts a complete result", () => {
    assert.deepEqual(shapeProblems(result), []);
  });

  it("names every missing or non-finite field", () => {
    const broken = JSON.parse(JSON.stringify(result)) as Record<string, unknown>;
    delete (broken.throughput as Record<string, unknown>).floorCommandsPerSec;
    (broken.latencyMs as { gateway: { p99: unknown } }).gateway.p99 = null;
    broken.at = "yesterday";
    delete broken.store;
    assert.deepEqual(shapeProblems(broken), [
      "throughput.floorCommandsPerSec is not a finite number",
      "latencyMs.gateway.p99 is not a finite number",
      "store is not a non-empty string",
      "at is not a date",
    ]);
  });

  it("prints a table with the gateway, the floor and their ratio", () => {
    const table = resultTable(result);
    const lines = table.split("\n");
    assert.match(lines[0]!, /\| gateway .*\| floor .*\| gateway \/ floor/);
    assert.ok(lines.some((line) => line.includes("throughput (commands/s)") && line.includes("20.0") && line.includes("25.0") && line.includes("0.80 of floor")));
    assert.ok(lines.some((line) => line.includes("fan-out 1000 subscribers") && line.includes("20.0 / 90.0")));
    assert.equal(new Set(lines.map((line) => line.length)).size, 1, "columns are aligned");
  });
});
