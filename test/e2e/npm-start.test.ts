import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CommandDocument, SendCommandDocument } from "../generated/graphql";
import { GraphQLTestClient } from "../kit/graphql-client";
import { waitForStatus } from "../kit/gateway";
import { startGatewayProcess, type GatewayProcess } from "../kit/process";
import { processesMentioning } from "../kit/process-groups";

/** The embedded default, as `npm start` runs it in production: no store or broker configured, the demo on. */
async function startEmbedded(dataDir: string) {
  const gateway = await startGatewayProcess({ NODE_ENV: "production", DATA_DIR: dataDir, MQTT_PORT: "0", MONGODB_URI: "", MQTT_URL: "", JWT_SECRET: "", DEMO: "1" });
  const token = /operator: (\S+)/.exec(gateway.output())?.[1];
  assert.ok(token, "demo tokens are printed");
  return { gateway, operator: new GraphQLTestClient(gateway.url, { token }) };
}

/** FerretDB processes serving `dataDir`. */
const ferretdbProcessesFor = (dataDir: string) => processesMentioning(dataDir).filter((line) => line.includes("ferretdb"));

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
    const running: GatewayProcess[] = [];
    try {
      const { gateway: first, operator } = await startEmbedded(dataDir);
      running.push(first);
      assert.notEqual(ferretdbProcessesFor(dataDir).length, 0, "the embedded FerretDB is visible while the gateway runs");

      const health = await fetch(`${first.url}/healthz`);
      assert.equal(health.status, 200);
      assert.equal((await fetch(`${first.url}/readyz`)).status, 200);

      const { sendCommand } = await operator.data(SendCommandDocument, {
        input: { deviceId: "thermostat-1", type: "thermostat.setTemperature", payload: { celsius: 22 } },
      });
      const done = await waitForStatus(operator, sendCommand.id, "SUCCEEDED");
      assert.deepEqual(done.result, { celsius: 22, setpoint: 22 });

      const metrics = await (await fetch(`${first.url}/metrics`)).text();
      assert.match(metrics, /gateway_command_transitions_total\{status="SUCCEEDED"\} [1-9]/);

      // NODE_ENV=production is where Apollo would install its own signal handlers: the README's sequence runs instead.
      assert.equal(await first.stop(), 0, first.output());
      assertStoppedInOrder(first.output());
      assert.deepEqual(first.leftBehind(), [], "the gateway stopped everything it started");
      assert.deepEqual(ferretdbProcessesFor(dataDir), [], "no FerretDB left running");

      const { gateway: second, operator: again } = await startEmbedded(dataDir);
      running.push(second);
      const { command } = await again.data(CommandDocument, { id: sendCommand.id });
      assert.equal(command?.status, "SUCCEEDED");
      assert.equal(await second.stop(), 0, second.output());
      assertStoppedInOrder(second.output());
      assert.deepEqual(second.leftBehind(), []);
      assert.deepEqual(ferretdbProcessesFor(dataDir), []);
    } finally {
      // A failed assertion must not leave a gateway and its FerretDB behind (stop() of a stopped one returns at once).
      await Promise.all(running.map((gateway) => gateway.stop()));
    }
  });
});
