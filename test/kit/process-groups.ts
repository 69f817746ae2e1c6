import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { appendFileSync, readdirSync, readFileSync } from "node:fs";

/**
 * Every process a test starts runs in a process group of its own (spawned detached), so killing the
 * group also kills what it started (the embedded FerretDB of a gateway). Started groups are killed
 * when the test process exits or is signalled, and each is written to the runner's registry
 * (TEST_PROCESS_REGISTRY), which kills whatever a killed test file could not clean up itself.
 */
const live = new Set<number>();
const REGISTRY = process.env.TEST_PROCESS_REGISTRY;

export interface GroupProcess {
  child: ChildProcess;
  /** Resolves with the exit code, or the signal's name. */
  exited: Promise<number | string>;
  /** Processes of the group still alive when its leader exited (killed then): what the process failed to stop itself. */
  leftBehind(): string[];
  /** `signal` to the group leader; after `graceMs` without an exit SIGKILL to the whole group; then whatever is left of the group is killed. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

export function spawnGroup(command: string, args: string[], options: SpawnOptions): GroupProcess {
  const child = spawn(command, args, { ...options, detached: true });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${command}`);
  register(pid);
  let leftBehind: string[] = [];
  const exited = new Promise<number | string>((resolveExit) =>
    child.once("exit", (code, signal) => {
      // The leader is gone; members it left behind (its own children) go with it.
      leftBehind = groupMembers(pid);
      killGroup(pid, "SIGKILL");
      unregister(pid);
      resolveExit(code ?? signal ?? -1);
    }),
  );
  return {
    child,
    exited,
    leftBehind: () => leftBehind,
    async stop(signal = "SIGTERM", graceMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<"late">((resolveLate) => (timer = setTimeout(resolveLate, graceMs, "late")));
      if ((await Promise.race([exited, late])) === "late") killGroup(pid, "SIGKILL");
      clearTimeout(timer);
      return exited;
    },
  };
}

/** Sends `signal` to every process of the group; a group already gone is fine. */
export function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

function register(pid: number): void {
  installExitHandlers();
  live.add(pid);
  if (REGISTRY) appendFileSync(REGISTRY, `start ${pid}\n`);
}

function unregister(pid: number): void {
  live.delete(pid);
  if (REGISTRY) appendFileSync(REGISTRY, `end ${pid}\n`);
}

let handlersInstalled = false;
function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const killAll = () => {
    for (const pid of live) killGroup(pid, "SIGKILL");
  };
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      killAll();
      process.exit(128 + (signal === "SIGINT" ? 2 : signal === "SIGTERM" ? 15 : 1));
    });
  }
}

/** The live processes of a process group, with their command lines (Linux: read from /proc). */
function groupMembers(pgid: number): string[] {
  return liveProcesses().filter((p) => p.pgid === pgid).map((p) => `${p.pid}: ${p.cmdline}`);
}

/** Live processes whose command line mentions `text` (Linux: read from /proc; zombies have an empty one). */
export function processesMentioning(text: string): string[] {
  return liveProcesses()
    .filter((p) => p.cmdline.includes(text))
    .map((p) => `${p.pid}: ${p.cmdline}`);
}

function liveProcesses(): Array<{ pid: number; pgid: number; cmdline: string }> {
  if (process.platform !== "linux") return [];
  const found: Array<{ pid: number; pgid: number; cmdline: string }> = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").slice(0, 200);
      if (cmdline === "") continue; // a zombie
      // Fields after the parenthesised command name: state, ppid, pgrp, ...
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const pgid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      found.push({ pid: Number(pid), pgid, cmdline });
    } catch {
      // exited meanwhile
    }
  }
  return found;
}
