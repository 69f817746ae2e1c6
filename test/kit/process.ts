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
}

/**
 * Starts the gateway as a separate process, exactly as `npm start` runs it after building, and resolves
 * once it logged "gateway ready". `env` replaces nothing but what it names. Port 0: the gateway picks
 * one and `url` carries the one its ready line names.
 */
export async function startGatewayProcess(env: Record<string, string>, port: number): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, LOG_LEVEL: "info", PORT: String(port), HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | string>((resolveExit) => child.once("exit", (code, signal) => resolveExit(code ?? signal ?? -1)));
  const readyPort = await new Promise<number>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway not ready within 60 s:\n${output}`)), 60_000);
    const check = () => {
      const ready = /"port":(\d+)[^\n]*"msg":"gateway ready"/.exec(output);
      if (!ready) return;
      clearTimeout(timer);
      child.stdout!.off("data", check);
      resolveReady(Number(ready[1]));
    };
    child.stdout!.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before it was ready:\n${output}`));
    });
  });
  return {
    child,
    url: `http://127.0.0.1:${port || readyPort}`,
    output: () => output,
    exited,
    stop: async () => {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

/** Ends a persistent broker session left by a gateway started with a stable REPLICA_ID. */
export async function dropBrokerSession(brokerUrl: string, clientId: string): Promise<void> {
  const client = await mqtt.connectAsync(brokerUrl, { clientId, clean: true, reconnectPeriod: 0 });
  await client.endAsync();
}
