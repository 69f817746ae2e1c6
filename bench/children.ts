import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { signToken } from "../src/auth/jwt";
import { createSimulatedDevice, type DeviceClient } from "../src/device-sdk";
import { GatewayApi } from "./gateway-api";
import { ChildChannel, type ReadyMessage } from "./ipc";

/** Forks one of the bench's child scripts (compiled beside this file) with the bench's environment plus `env`. */
export function forkChild(script: string, execArgv: string[], env: Record<string, string>): ChildProcess {
  return fork(join(__dirname, script), [], {
    execArgv,
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "error", ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

/** Asks a child to stop (so a --cpu-prof profile is written), killing it if it has not gone within 10 s. */
export async function stopChild(channel: ChildChannel): Promise<void> {
  if (channel.child.exitCode !== null) return;
  const exited = new Promise((resolveExit) => channel.child.once("exit", resolveExit));
  const kill = setTimeout(() => channel.child.kill("SIGKILL"), 10_000);
  await channel.request({ kind: "stop" }).catch(() => undefined);
  await exited;
  clearTimeout(kill);
}

/** The CPU model, for the result's machine description. */
export function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpus()[0]?.model ?? "unknown";
  } catch {
    return cpus()[0]?.model ?? "unknown";
  }
}

/** A simulated thermostat that answers at once. */
export function benchDevice(id: string, brokerUrl: string, topicPrefix: string): DeviceClient {
  return createSimulatedDevice({ deviceId: id, model: "thermostat", brokerUrl, topicPrefix, latencyMs: [0, 0] });
}

export const BENCH_JWT_SECRET = "bench-secret-0123456789-abcdefghijklmnop";

export interface BenchGateway {
  channel: ChildChannel;
  ready: ReadyMessage;
  api: GatewayApi;
  topicPrefix: string;
  /** The gateway's data directory (its embedded store's files) and database. */
  dataDir: string;
  database: string;
}

/**
 * A gateway child as `npm start` runs it: embedded store in a temporary folder, embedded broker (unless
 * `env` names another), store commands counted; with an API client for an admin and an operator of tenant
 * `bench`. `cleanup` gets what stops it.
 */
export async function startBenchGateway(
  name: string,
  execArgv: string[],
  cleanup: Array<() => Promise<unknown>>,
  env: Record<string, string> = {},
): Promise<BenchGateway> {
  const runId = Math.random().toString(36).slice(2, 8);
  const dataDir = mkdtempSync(join(tmpdir(), `gateway-${name}-`));
  cleanup.push(async () => rmSync(dataDir, { recursive: true, force: true }));
  const topicPrefix = `${name}-${runId}`;
  const database = `bench_${name.replace(/\W/g, "_")}`;
  const child = forkChild("gateway-process.js", ["--expose-gc", ...execArgv], {
    MONGODB_URI: "",
    DATA_DIR: dataDir,
    MONGODB_DB: database,
    MQTT_TOPIC_PREFIX: topicPrefix,
    MQTT_PORT: "0",
    PORT: "0",
    HOST: "127.0.0.1",
    JWT_SECRET: BENCH_JWT_SECRET,
    DEMO: "0",
    // The bench measures the store path, not the per-principal mutation limit (600 a minute by default).
    RATE_LIMIT_MUTATIONS_PER_MINUTE: "1000000",
    ...env,
  });
  const ready = await ChildChannel.ready(child);
  const channel = new ChildChannel(child);
  cleanup.push(() => stopChild(channel));
  const api = new GatewayApi(`http://127.0.0.1:${ready.port}`, {
    admin: await signToken(BENCH_JWT_SECRET, { sub: "bench-admin", tenant: "bench", roles: ["admin"] }),
    operator: await signToken(BENCH_JWT_SECRET, { sub: "bench-operator", tenant: "bench", roles: ["operator"] }),
  });
  return { channel, ready, api, topicPrefix, dataDir, database };
}
