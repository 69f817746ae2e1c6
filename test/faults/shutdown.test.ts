import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { startEmbeddedStore } from "../../src/embedded/ferretdb";
import { createLogger } from "../../src/logger";
import { startPrivateMosquitto } from "../kit/mosquitto";
import { startGatewayProcess, type GatewayProcess } from "../kit/process";

/**
 * Invariant: SIGTERM runs the README's shutdown and exits 0 in production, even when the store or the
 * broker went away first (the process gives up by itself before an orchestrator's 10 s, exit code 1).
 */
describe("SIGTERM with the store or the broker gone", () => {
  const dir = mkdtempSync(join(tmpdir(), "shutdown-"));
  const started: GatewayProcess[] = [];
  after(async () => {
    for (const gateway of started) await gateway.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(name: string) {
    const store = await startEmbeddedStore({ dataDir: mkdtempSync(join(dir, `${name}-store-`)), log: createLogger("warn") });
    const broker = await startPrivateMosquitto(dir);
    const gateway = await startGatewayProcess(
      {
        NODE_ENV: "production",
        MONGODB_URI: store.uri,
        MQTT_URL: broker.url,
        JWT_SECRET: "shutdown-test-secret-0123456789abcdefgh",
        DEMO: "0",
      },
    );
    started.push(gateway);
    return { store, broker, gateway };
  }

  const waitForNotReady = async (gateway: GatewayProcess) => {
    while ((await fetch(`${gateway.url}/readyz`)).status !== 503) await new Promise((resolve) => setTimeout(resolve, 50));
  };

  for (const gone of ["store", "broker"] as const) {
    it(`${gone} gone: exits 0 after running every stop step`, async () => {
      const { store, broker, gateway } = await start(gone);
      const [away, remaining] = gone === "store" ? [store, broker] : [broker, store];
      try {
        await away.stop();
        await waitForNotReady(gateway);
        assert.equal(await gateway.stop(), 0, gateway.output());
        assert.match(gateway.output(), /"msg":"stopped"/);
      } finally {
        await remaining.stop();
      }
    });
  }
});
