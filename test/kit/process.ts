import { resolve } from "node:path";
import mqtt from "mqtt";
import { spawnGroup } from "./process-groups";

const MAIN = resolve(__dirname, "../../src/main.js");
const READY_TIMEOUT_MS = 60_000;

export interface GatewayProcess {
  url: string;
  port: number;
  /** Everything the process printed. */
  output(): string;
  /** Resolves with the exit code, or the signal's name. */
  exited: Promise<number | string>;
  /** SIGTERM, SIGKILL to its process group if it is not gone within 10 s, then the exit code. */
  stop(): Promise<number | string>;
  /** Processes of its group still alive when it exited (then killed): say, an embedded FerretDB it did not stop. */
  leftBehind(): string[];
  /** SIGKILL to its process group (a power cut), then the exit. */
  kill(): Promise<number | string>;
}

/**
 * Starts the gateway as a separate process (its own process group), exactly as `npm start` runs it
 * after building, on a port it picks itself (PORT=0 unless `env` names one), and resolves once it
 * logged "gateway ready" with that port. `env` replaces nothing but what it names. A gateway that is
 * not ready in time is killed with its group.
 */
export async function startGatewayProcess(env: Record<string, string>): Promise<GatewayProcess> {
  const gateway = spawnGroup(process.execPath, [MAIN], {
    env: { ...process.env, LOG_LEVEL: "info", PORT: "0", HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { child } = gateway;
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const kill = () => gateway.stop("SIGKILL", 0);
  let port: number;
  try {
    port = await new Promise<number>((resolveReady, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway not ready within ${READY_TIMEOUT_MS / 1000} s:\n${output}`)), READY_TIMEOUT_MS);
      const check = () => {
        const ready = readyLine(output);
        if (ready === undefined) return;
        clearTimeout(timer);
        child.stdout!.off("data", check);
        resolveReady(ready);
      };
      child.stdout!.on("data", check);
      void gateway.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`gateway exited with ${code} before it was ready:\n${output}`));
      });
    });
  } catch (error) {
    await kill();
    throw error;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    output: () => output,
    exited: gateway.exited,
    leftBehind: gateway.leftBehind,
    stop: () => gateway.stop("SIGTERM"),
    kill,
  };
}

/** The port of the first complete "gateway ready" log line, if there is one yet. */
function readyLine(output: string): number | undefined {
  // Only lines already ended by a newline are complete.
  for (const line of output.split("\n").slice(0, -1)) {
    if (!line.includes('"msg":"gateway ready"')) continue;
    const { port } = JSON.parse(line) as { port?: unknown };
    if (typeof port === "number" && port > 0) return port;
  }
  return undefined;
}

/** Ends a persistent broker session left by a gateway started with a stable REPLICA_ID. */
export async function dropBrokerSession(brokerUrl: string, clientId: string): Promise<void> {
  // allowRetries false: a connection closed before CONNACK is an error, not a wait for ever.
  const client = await mqtt.connectAsync(brokerUrl, { clientId, clean: true, reconnectPeriod: 0, connectTimeout: 5_000 }, false);
  await client.endAsync();
}
