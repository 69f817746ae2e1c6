import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { SendCommandDocument } from "../generated/graphql";
import { findFreePort } from "../../src/embedded/free-port";
import { GraphQLTestClient } from "../kit/graphql-client";
import { waitForStatus } from "../kit/gateway";
import { startGatewayProcess, type GatewayProcess } from "../kit/process";
import { ferretdbPid } from "../kit/store";

/**
 * Invariant: when the embedded FerretDB dies (the OOM killer sends SIGKILL), the gateway starts it again on the same
 * files and port and carries on, /readyz saying 503 meanwhile; when it cannot, the gateway exits non-zero (the data
 * is on disk) instead of staying up unready forever. Both are counted in /metrics.
 */
describe("embedded store killed under a running gateway", () => {
  const dirs: string[] = [];
  const gateways: GatewayProcess[] = [];
  after(async () => {
    // stop() of a gateway that already exited just reports its exit.
    for (const gateway of gateways) await gateway.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  async function startEmbedded() {
    const dataDir = mkdtempSync(join(tmpdir(), "store-death-"));
    dirs.push(dataDir);
    const env = { DATA_DIR: dataDir, MQTT_PORT: String(await findFreePort()), MONGODB_URI: "", MQTT_URL: "", JWT_SECRET: "", DEMO: "1" };
    const gateway = await startGatewayProcess(env);
    gateways.push(gateway);
    const token = /operator: (\S+)/.exec(gateway.output())?.[1];
    assert.ok(token, "demo tokens are printed");
    return { gateway, dataDir, operator: new GraphQLTestClient(gateway.url, { token }) };
  }
  const metric = async (url: string, outcome: string) =>
    Number(new RegExp(`gateway_embedded_store_restarts_total\\{outcome="${outcome}"\\} (\\d+)`).exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);

  it("comes back after kill -9 of FerretDB, and a command then succeeds", async () => {
    const { gateway, dataDir, operator } = await startEmbedded();
    // Readiness polled from before the kill, so the short outage is observed however fast the restart is.
    const seen = new Set<number>();
    let polling = true;
    const poller = (async () => {
      while (polling) {
        seen.add((await fetch(`${gateway.url}/readyz`)).status);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    process.kill(ferretdbPid(dataDir), "SIGKILL");
    const deadline = Date.now() + 60_000;
    while ((await metric(gateway.url, "restarted")) < 1 || (await fetch(`${gateway.url}/readyz`)).status !== 200) {
      assert.ok(Date.now() < deadline, `not ready again within 60 s:\n${gateway.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    polling = false;
    await poller;
    assert.ok(seen.has(503), "/readyz said 503 while the store was down");
    assert.match(gateway.output(), /embedded store \(FerretDB\) exited unexpectedly/);

    const { sendCommand } = await operator.data(SendCommandDocument, {
      input: { deviceId: "thermostat-1", type: "thermostat.setTemperature", payload: { celsius: 21 } },
    });
    await waitForStatus(operator, sendCommand.id, "SUCCEEDED", 30_000);
    assert.equal(await gateway.stop(), 0, gateway.output());
  });

  it("exits non-zero when FerretDB cannot be started again", async () => {
    const { gateway, dataDir } = await startEmbedded();
    const storePort = Number(/"uri":"mongodb:\/\/127\.0\.0\.1:(\d+)\//.exec(gateway.output())?.[1]);
    assert.ok(storePort > 0, "the store's port is logged");
    process.kill(ferretdbPid(dataDir), "SIGKILL");
    // Whoever takes the port first keeps FerretDB from coming back on it.
    const squatter = net.createServer();
    await bindWhenFree(squatter, storePort);
    try {
      assert.equal(await gateway.exited, 1, gateway.output());
    } finally {
      squatter.close();
    }
    assert.match(gateway.output(), /the embedded store cannot be restarted; the gateway exits/);
  });
});

/** FerretDB's socket closes as the kernel reaps it: retry until the port is ours. */
async function bindWhenFree(server: net.Server, port: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => {
          server.off("error", reject);
          resolve();
        });
      });
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}
