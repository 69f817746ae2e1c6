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

/** The shutdown of the README: the broker, then the store, then "stopped"; never the forced exit. */
function assertStoppedInOrder(output: string) {
  const at = (message: string) => output.indexOf(`"msg":"${message}"`);
  assert.equal(at("shutdown took longer than 8 s; exiting"), -1, output);
  assert.ok(at("stopping") > 0, output);
  assert.ok(at("stopping") < at("embedded MQTT broker closed"), output);
  assert.ok(at("embedded MQTT broker closed") < at("embedded store (FerretDB) stopped"), output);
  assert.ok(at("embedded store (FerretDB) stopped") < at("stopped"), output);
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
