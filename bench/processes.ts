import { fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import type { ChildChannel } from "./ipc";

/** Forks one of the bench's child scripts (gateway, floor, device host) with the IPC channel, its output on the bench's. */
export function forkChild(script: string, execArgv: string[], env: Record<string, string>): ChildProcess {
  return fork(join(__dirname, script), [], {
    execArgv,
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "error", ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

/** Asks a child to stop and waits for its exit (SIGKILL after 10 s). */
export async function stopChild(channel: ChildChannel): Promise<void> {
  if (channel.child.exitCode !== null) return;
  const exited = new Promise((resolveExit) => channel.child.once("exit", resolveExit));
  const kill = setTimeout(() => channel.child.kill("SIGKILL"), 10_000);
  await channel.request({ kind: "stop" }).catch(() => undefined);
  await exited;
  clearTimeout(kill);
}

export function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpus()[0]?.model ?? "unknown";
  } catch {
    return cpus()[0]?.model ?? "unknown";
  }
}
