import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** The fields of /proc/<pid>/stat the bench needs (proc(5)); times in clock ticks, all threads included. */
export interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  utimeTicks: number;
  stimeTicks: number;
}

/**
 * Parses one /proc/<pid>/stat line. `comm` is in parentheses and may itself hold spaces and ")",
 * so the fields are counted from the last ")".
 */
export function parseProcStat(line: string): ProcStat {
  const open = line.indexOf("(");
  const close = line.lastIndexOf(")");
  if (open < 0 || close < open) throw new Error(`not a /proc/<pid>/stat line: ${line.slice(0, 80)}`);
  const rest = line.slice(close + 2).trim().split(/\s+/);
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  const field = (n: number) => Number(rest[n - 3]);
  const stat = { pid: Number(line.slice(0, open).trim()), comm: line.slice(open + 1, close), ppid: field(4), utimeTicks: field(14), stimeTicks: field(15) };
  if (![stat.pid, stat.ppid, stat.utimeTicks, stat.stimeTicks].every(Number.isInteger)) throw new Error(`malformed /proc/<pid>/stat line: ${line.slice(0, 80)}`);
  return stat;
}

/** Pids among `stats` that descend from `root` (children, grandchildren …) and whose comm matches. */
export function descendants(stats: readonly ProcStat[], root: number, comm: RegExp): number[] {
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const found: number[] = [];
  const queue = [root];
  while (queue.length) {
    for (const child of children.get(queue.shift()!) ?? []) {
      if (comm.test(child.comm)) found.push(child.pid);
      queue.push(child.pid);
    }
  }
  return found.sort((a, b) => a - b);
}

/** Percent of one core used between two samples of the same processes (100 = one core busy the whole time). */
export function cpuPercent(before: readonly ProcStat[], after: readonly ProcStat[], elapsedMs: number, ticksPerSecond: number): number {
  const ticks = (stats: readonly ProcStat[], pids: ReadonlySet<number>) => stats.filter((s) => pids.has(s.pid)).reduce((sum, s) => sum + s.utimeTicks + s.stimeTicks, 0);
  // A process that exited in between has no second sample: count only those present in both.
  const both = new Set(before.map((s) => s.pid).filter((pid) => after.some((s) => s.pid === pid)));
  return ((ticks(after, both) - ticks(before, both)) / ticksPerSecond / (elapsedMs / 1000)) * 100;
}

/** Reads /proc/<pid>/stat of each pid that still exists. */
export function readProcStats(pids: readonly number[]): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const pid of pids) {
    try {
      stats.push(parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8")));
    } catch {
      // gone
    }
  }
  return stats;
}

/** Every process visible in /proc (for finding a child's descendants). */
export function readAllProcStats(): ProcStat[] {
  return readProcStats(readdirSync("/proc").filter((name) => /^\d+$/.test(name)).map(Number));
}

/** USER_HZ, the unit of /proc/<pid>/stat times: `getconf CLK_TCK`, 100 on every Linux the bench runs on. */
export function clockTicksPerSecond(): number {
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

/** The machine's CPU time from the first line of /proc/stat, in clock ticks: all of it, and what the hypervisor took (steal). */
export interface MachineCpu {
  totalTicks: number;
  stealTicks: number;
}

/** Parses the `cpu` line of /proc/stat (user nice system idle iowait irq softirq steal …). */
export function parseMachineCpu(line: string): MachineCpu {
  const [label, ...fields] = line.trim().split(/\s+/);
  const ticks = fields.slice(0, 8).map(Number);
  if (label !== "cpu" || ticks.length < 8 || !ticks.every(Number.isInteger)) throw new Error(`not the cpu line of /proc/stat: ${line.slice(0, 80)}`);
  return { totalTicks: ticks.reduce((sum, n) => sum + n, 0), stealTicks: ticks[7]! };
}

export function readMachineCpu(): MachineCpu {
  return parseMachineCpu(readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!);
}

/** Share of the machine's CPU time the hypervisor gave to others between two samples (percent): a loaded host. */
export function stealPercent(before: MachineCpu, after: MachineCpu): number {
  const total = after.totalTicks - before.totalTicks;
  return total > 0 ? ((after.stealTicks - before.stealTicks) / total) * 100 : 0;
}
