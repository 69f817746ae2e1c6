import { fork, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createSimulatedDevice, type DeviceClient } from "../src/device-sdk";
import type { ChildChannel } from "./ipc";

/** Forks a bench child script of this folder (the gateway, the floor) with the IPC channel of ./ipc. */
export function forkChild(script: string, execArgv: string[], env: Record<string, string>): ChildProcess {
  return fork(join(__dirname, script), [], {
    execArgv,
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "error", ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

/** Asks the child to stop cleanly; SIGKILL if it is not gone within 10 s. */
export async function stopChild(channel: ChildChannel): Promise<void> {
  if (channel.child.exitCode !== null) return;
  const exited = new Promise((resolveExit) => channel.child.once("exit", resolveExit));
  const kill = setTimeout(() => channel.child.kill("SIGKILL"), 10_000);
  await channel.request({ kind: "stop" }).catch(() => undefined);
  await exited;
  clearTimeout(kill);
}

/** A simulated thermostat that answers at once: the bench measures the gateway, not the device. */
export function benchDevice(id: string, brokerUrl: string, topicPrefix: string): DeviceClient {
  return createSimulatedDevice({ deviceId: id, model: "thermostat", brokerUrl, topicPrefix, latencyMs: [0, 0] });
}
