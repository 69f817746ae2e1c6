import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import mqtt from "mqtt";

const MAIN = resolve(__dirname, "../../src/main.js");

export interface GatewayProcess {
  child: ChildProcess;
  url: string;
  /** Everything the process printed. */
  output(): string;
  /** Resolves with the exit code, or the signal's name. */
  exited: Promise<number | string>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | string>;
  /** SIGKILL to the whole process group (for `finally`: whatever else the gateway started dies too). */
  kill(): void;
}

/**
 * Starts the gateway as a separate process, exactly as `npm start` runs it after building, and resolves
 * once it logged "gateway ready". `env` replaces nothing but what it names.
 */
export async function startGatewayProcess(env: Record<string, string>, port: number): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, LOG_LEVEL: "info", PORT: String(port), HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, so that kill() reaches everything it started.
    detached: true,
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | string>((resolveExit) => child.once("exit", (code, signal) => resolveExit(code ?? signal ?? -1)));
  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => {
      killGroup(child);
      reject(new Error(`gateway not ready within 60 s:\n${output}`));
    }, 60_000);
    const check = () => {
      if (!output.includes('"msg":"gateway ready"')) return;
      clearTimeout(timer);
      child.stdout!.off("data", check);
      resolveReady();
    };
    child.stdout!.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before it was ready:\n${output}`));
    });
  });
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    exited,
    stop: async () => {
      child.kill("SIGTERM");
      return exited;
    },
    kill: () => killGroup(child),
  };
}

/** Gateways still running when the test process exits (a file that timed out, an assertion before `finally`) die with it. */
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) killGroup(child);
});

function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, "SIGKILL");
  } catch {
    // the group is gone already
  }
}

/** Ends a persistent broker session left by a gateway started with a stable REPLICA_ID. */
export async function dropBrokerSession(brokerUrl: string, clientId: string): Promise<void> {
  const client = await mqtt.connectAsync(brokerUrl, { clientId, clean: true, reconnectPeriod: 0 });
  await client.endAsync();
}
