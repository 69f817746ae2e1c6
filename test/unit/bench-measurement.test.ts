import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Completions, runClosedLoop, type Side } from "../../bench/closed-loop";
import { finalCommand } from "../../bench/history";
import { cpuPercent, descendants, parseMachineCpu, parseProcStat, stealPercent, type ProcStat } from "../../bench/proc-cpu";
import { addOps, opsBetween, totalOps } from "../../bench/store-ops";

// A real line from /proc/<pid>/stat (Linux 6.x), with a comm holding a space and a ")".
const STAT_LINE =
  "4242 (ferret db) x) S 4200 4242 4200 0 -1 4194560 9812 0 0 0 1234 567 0 0 20 0 12 0 158000 1500000000 20000 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";

describe("bench: CPU from /proc/<pid>/stat", () => {
  it("reads pid, comm, ppid, utime and stime, counting fields from the last parenthesis", () => {
    assert.deepEqual(parseProcStat(STAT_LINE), { pid: 4242, comm: "ferret db) x", ppid: 4200, utimeTicks: 1234, stimeTicks: 567 });
  });

  it("rejects what is not a stat line", () => {
    assert.throws(() => parseProcStat("no parentheses here"), /not a \/proc\/<pid>\/stat line/);
    assert.throws(() => parseProcStat("12 (x) S notanumber"), /malformed/);
  });

  const stat = (pid: number, ppid: number, comm: string, utimeTicks = 0, stimeTicks = 0): ProcStat => ({ pid, ppid, comm, utimeTicks, stimeTicks });

  it("finds matching processes anywhere below a root, not beside it", () => {
    const stats = [stat(10, 1, "node"), stat(11, 10, "sh"), stat(12, 11, "ferretdb"), stat(13, 10, "node"), stat(14, 13, "ferretdb"), stat(20, 1, "ferretdb")];
    assert.deepEqual(descendants(stats, 10, /^ferretdb/), [12, 14]);
    assert.deepEqual(descendants(stats, 99, /^ferretdb/), []);
  });

  it("turns ticks over a wall-clock interval into percent of one core, over processes present in both samples", () => {
    const before = [stat(1, 0, "a", 100, 50), stat(2, 0, "b", 10, 0)];
    const after = [stat(1, 0, "a", 130, 70), stat(3, 0, "c", 999, 999)];
    // 50 ticks at 100 Hz = 0.5 s of CPU over 10 s: 5 % of a core; pid 2 exited, pid 3 is new: neither counts.
    assert.equal(cpuPercent(before, after, 10_000, 100), 5);
    assert.equal(cpuPercent(before, before, 10_000, 100), 0);
  });
});

describe("bench: the machine's CPU from /proc/stat", () => {
  it("sums the first eight fields and keeps steal, the eighth", () => {
    assert.deepEqual(parseMachineCpu("cpu  678087 2475 112068 634935 3032 0 14711 26883 0 0"), { totalTicks: 1472191, stealTicks: 26883 });
    assert.throws(() => parseMachineCpu("cpu0 1 2 3 4 5 6 7 8"), /not the cpu line/);
    assert.throws(() => parseMachineCpu("cpu 1 2 3"), /not the cpu line/);
  });

  it("gives the share of the interval the hypervisor took", () => {
    const before = { totalTicks: 1000, stealTicks: 10 };
    assert.equal(stealPercent(before, { totalTicks: 1200, stealTicks: 80 }), 35);
    assert.equal(stealPercent(before, before), 0);
  });
});

describe("bench: store command counts", () => {
  it("subtracts snapshots by command name, keeping only what happened in between", () => {
    assert.deepEqual(opsBetween({ insert: 5, find: 2 }, { insert: 9, find: 2, update: 3 }), { insert: 4, update: 3 });
  });

  it("adds and totals counts", () => {
    const sum = addOps({ insert: 1, find: 2 }, { find: 3, update: 4 });
    assert.deepEqual(sum, { insert: 1, find: 5, update: 4 });
    assert.equal(totalOps(sum), 10);
  });
});

describe("bench: completions", () => {
  it("matches a final transition to its waiter, even one that arrived before the wait", async () => {
    const completions = new Completions();
    completions.transition("early", "SUCCEEDED");
    const late = completions.wait("late", 5_000);
    completions.transition("late", "DELIVERED"); // not final: ignored
    completions.transition("late", "FAILED");
    assert.equal((await completions.wait("early", 5_000)).status, "SUCCEEDED");
    assert.equal((await late).status, "FAILED");
  });

  it("gives up on a command whose end never arrives", async () => {
    assert.equal((await new Completions().wait("never", 10)).status, "LOST");
  });
});

describe("bench: closed loop", () => {
  /** A side whose devices answer as `outcome` says: settle with a status, refuse the send, or never answer. */
  const fakeSide = (outcome: (deviceId: string) => string): Side => {
    const completions = new Completions();
    let n = 0;
    return {
      name: "fake",
      completions,
      send: async (deviceId) => {
        const id = `c${n++}`;
        const what = outcome(deviceId);
        if (what === "refuse") throw new Error("UNAVAILABLE");
        if (what !== "hang") setTimeout(() => completions.transition(id, what), 1);
        return id;
      },
    };
  };

  it("counts SUCCEEDED as completed with a latency each, anything else as failed, refusals by message", async () => {
    const outcomes: Record<string, string> = { ok: "SUCCEEDED", bad: "FAILED", no: "refuse" };
    const run = await runClosedLoop(fakeSide((d) => outcomes[d]!), ["ok", "bad", "no"], 3, 50, 1_000);
    assert.ok(run.completed > 0 && run.failed > 0);
    assert.equal(run.latenciesMs.length, run.completed);
    assert.ok(run.sendErrors.UNAVAILABLE! > 0 && run.sendErrors.UNAVAILABLE! < run.failed);
    assert.deepEqual(run.endedAs, { FAILED: run.failed - run.sendErrors.UNAVAILABLE! });
  });

  it("never has two commands to one device in flight (a newer setpoint would supersede the older)", async () => {
    const inFlight = new Map<string, number>();
    let most = 0;
    const completions = new Completions();
    let n = 0;
    const side: Side = {
      name: "fake",
      completions,
      send: async (deviceId) => {
        const id = `c${n++}`;
        const now = (inFlight.get(deviceId) ?? 0) + 1;
        inFlight.set(deviceId, now);
        most = Math.max(most, now);
        // Uneven answer times, so that workers run at different speeds.
        setTimeout(() => {
          inFlight.set(deviceId, inFlight.get(deviceId)! - 1);
          completions.transition(id, "SUCCEEDED");
        }, n % 3 === 0 ? 5 : 1);
        return id;
      },
    };
    const run = await runClosedLoop(side, ["d0", "d1", "d2", "d3", "d4", "d5", "d6"], 3, 100, 1_000);
    assert.ok(run.completed > 10);
    assert.equal(most, 1);
  });

  it("cuts off a run whose commands never end, counting them as failed", async () => {
    const started = Date.now();
    const run = await runClosedLoop(fakeSide(() => "hang"), ["d0", "d1"], 2, 20, 100);
    assert.equal(run.completed, 0);
    assert.ok(run.failed >= 2);
    assert.ok(Date.now() - started < 5_000);
  });
});

describe("bench: seeded history", () => {
  const endAt = new Date("2030-01-02T00:00:00Z");
  const devices = ["d0", "d1", "d2"];

  it("makes final commands with their four transitions in order, one a second back in time, over the devices", () => {
    const first = finalCommand(0, devices, endAt);
    const second = finalCommand(1, devices, endAt);
    assert.equal(first.status, "SUCCEEDED");
    assert.deepEqual(first.history.map((e) => e.status), ["QUEUED", "SENT", "DELIVERED", "SUCCEEDED"]);
    assert.ok(first.history.every((e, i) => i === 0 || e.at >= first.history[i - 1]!.at));
    assert.equal(first.createdAt.getTime() - second.createdAt.getTime(), 1000);
    assert.ok(first.updatedAt < endAt);
    assert.deepEqual([first.deviceId, second.deviceId, finalCommand(3, devices, endAt).deviceId], ["d0", "d1", "d0"]);
    assert.notEqual(first.id, second.id);
  });

  it("makes one in twenty FAILED with an error instead of a result", () => {
    const failed = finalCommand(19, devices, endAt);
    assert.equal(failed.status, "FAILED");
    assert.equal(failed.history[3]!.status, "FAILED");
    assert.ok(failed.error && !failed.result);
    // 100,000 one a second back stay inside the default 30-day retention.
    assert.ok(endAt.getTime() - finalCommand(99_999, devices, endAt).createdAt.getTime() < 30 * 86_400_000);
  });
});
