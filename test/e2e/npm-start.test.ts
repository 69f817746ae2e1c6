import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CommandDocument, SendCommandDocument } from "../generated/graphql";
import { findFreePort } from "../../src/embedded/free-port";
import { GraphQLTestClient } from "../kit/graphql-client";
import { waitForStatus } from "../kit/gateway";
import { startGatewayProcess } from "../kit/process";

/** The embedded default, as `npm start` runs it in production: no store or broker configured, the demo on. */
async function startEmbedded(dataDir: string, port: number, mqttPort: number) {
  const gateway = await startGatewayProcess(
    { NODE_ENV: "production", DATA_DIR: dataDir, MQTT_PORT: String(mqttPort), MONGODB_URI: "", MQTT_URL: "", JWT_SECRET: "", DEMO: "1" },
    port,
  );
  const token = /operator: (\S+)/.exec(gateway.output())?.[1];
  assert.ok(token, "demo tokens are printed");
  return { gateway, operator: new GraphQLTestClient(gateway.url, { token }) };
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

/** The shutdown of the README: the broker, then the store, then "stopped"; never the forced exit. By log time, as lines may interleave. */
function assertStoppedInOrder(output: string) {
  const lines = output.split("\n").flatMap((line): Array<{ msg?: string; time?: number }> => {
    try {
      return [JSON.parse(line)];
    } catch {
      return []; // the demo's instructions
    }
  });
  const at = (message: string) => lines.find((line) => line.msg === message)?.time ?? Number.NaN;
  assert.equal(lines.some((line) => line.msg?.startsWith("shutdown took longer")), false, output);
  const steps = ["stopping", "embedded MQTT broker closed", "embedded store (FerretDB) stopped", "stopped"].map(at);
  assert.ok(steps.every((time, i) => Number.isFinite(time) && (i === 0 || time >= steps[i - 1]!)), `${steps.join(" ")}\n${output}`);
}

describe("npm start (embedded default)", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "gateway-e2e-"));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it("serves a demo command from curl to SUCCEEDED, stops cleanly on SIGTERM, and keeps its data across a restart", async () => {
    const port = await findFreePort();
    const mqttPort = await findFreePort();
    const { gateway: first, operator } = await startEmbedded(dataDir, port, mqttPort);

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

    // NODE_ENV=production is where Apollo would install its own signal handlers: the README's sequence runs instead.
    assert.equal(await first.stop(), 0, first.output());
    assertStoppedInOrder(first.output());
    assert.deepEqual(ferretdbProcessesFor(dataDir), [], "no FerretDB left running");

    const { gateway: second, operator: again } = await startEmbedded(dataDir, port, mqttPort);
    const { command } = await again.data(CommandDocument, { id: sendCommand.id });
    assert.equal(command?.status, "SUCCEEDED");
    assert.equal(await second.stop(), 0, second.output());
    assertStoppedInOrder(second.output());
    assert.deepEqual(ferretdbProcessesFor(dataDir), []);
  });
});
