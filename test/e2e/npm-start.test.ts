import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { CommandDocument, SendCommandDocument } from "../generated/graphql";
import { findFreePort } from "../../src/embedded/free-port";
import { GraphQLTestClient } from "../kit/graphql-client";
import { waitForStatus } from "../kit/gateway";

const MAIN = resolve(__dirname, "../../src/main.js");

interface Started {
  child: ChildProcess;
  output: () => string;
  operatorToken: string;
  port: number;
}

/** Starts the gateway exactly as `npm start` does after its build step, with the embedded store, broker and demo. */
async function startGatewayProcess(dataDir: string, port: number, mqttPort: number): Promise<Started> {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, DATA_DIR: dataDir, PORT: String(port), MQTT_PORT: String(mqttPort), MONGODB_URI: "", MQTT_URL: "", LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const operatorToken = await new Promise<string>((resolveToken, reject) => {
    const timer = setTimeout(() => reject(new Error(`no demo tokens within 60 s:\n${output}`)), 60_000);
    const check = () => {
      const match = /operator: (\S+)/.exec(output);
      if (match && output.includes("gateway ready")) {
        clearTimeout(timer);
        resolveToken(match[1]!);
      }
    };
    child.stdout!.on("data", check);
    child.once("exit", (code) => reject(new Error(`gateway exited with ${code}:\n${output}`)));
  });
  return { child, output: () => output, operatorToken, port };
}

async function stopGatewayProcess(started: Started): Promise<number | null> {
  const exited = new Promise<number | null>((resolveExit) => started.child.once("exit", (code) => resolveExit(code)));
  started.child.kill("SIGTERM");
  return exited;
}

function ferretdbProcessesFor(dataDir: string): string[] {
  try {
    return execFileSync("pgrep", ["-af", "ferretdb"], { encoding: "utf8" })
      .split("\n")
      .filter((line) => line.includes(dataDir));
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

describe("npm start (embedded default)", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "gateway-e2e-"));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it("serves a demo command from curl to SUCCEEDED, stops cleanly on SIGTERM, and keeps its data across a restart", async () => {
    const port = await findFreePort();
    const mqttPort = await findFreePort();
    const first = await startGatewayProcess(dataDir, port, mqttPort);
    const operator = new GraphQLTestClient(`http://127.0.0.1:${port}`, { token: first.operatorToken });

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);

    const { sendCommand } = await operator.data(SendCommandDocument, {
      input: { deviceId: "thermostat-1", type: "thermostat.setTemperature", payload: { celsius: 22 } },
    });
    const done = await waitForStatus(operator, sendCommand.id, "SUCCEEDED");
    assert.deepEqual(done.result, { celsius: 22, setpoint: 22 });

    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /gateway_command_transitions_total\{status="SUCCEEDED"\} [1-9]/);

    assert.equal(await stopGatewayProcess(first), 0, first.output());
    assert.deepEqual(ferretdbProcessesFor(dataDir), [], "no FerretDB left running");

    const second = await startGatewayProcess(dataDir, port, mqttPort);
    const again = new GraphQLTestClient(`http://127.0.0.1:${port}`, { token: second.operatorToken });
    const { command } = await again.data(CommandDocument, { id: sendCommand.id });
    assert.equal(command?.status, "SUCCEEDED");
    assert.equal(await stopGatewayProcess(second), 0, second.output());
    assert.deepEqual(ferretdbProcessesFor(dataDir), []);
  });
});
