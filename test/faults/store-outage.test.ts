import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { SendCommandDocument } from "../generated/graphql";
import { startTestGateway, waitForStatus, type TestGateway } from "../kit/gateway";
import { waitForMetric } from "../kit/metrics";
import { testStoreUri } from "../kit/store";

/** A TCP hop between the gateway and the store that can be cut and restored on the same port: a real outage. */
async function storeLink(target: URL) {
  const sockets = new Set<net.Socket>();
  let server: net.Server;
  const listen = (port: number) =>
    new Promise<number>((resolve) => {
      server = net.createServer((client) => {
        const upstream = net.connect(Number(target.port), target.hostname);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on("close", () => sockets.delete(s));
          s.on("error", () => undefined);
        }
        client.pipe(upstream).pipe(client);
      });
      server.listen(port, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
    });
  const port = await listen(0);
  return {
    uri: `mongodb://127.0.0.1:${port}/`,
    cut: async () => {
      await new Promise((resolve) => {
        server.close(resolve);
        for (const s of sockets) s.destroy();
      });
    },
    restore: () => listen(port),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Issue 10 item 5: a final reply that arrives while the store is away is neither acknowledged nor lost. */
describe("store outage while a device answers", () => {
  let link: Awaited<ReturnType<typeof storeLink>>;
  let gw: TestGateway;

  before(async () => {
    link = await storeLink(new URL(await testStoreUri()));
    gw = await startTestGateway({ env: { MONGODB_URI: link.uri } });
  });
  after(async () => {
    await gw?.stop();
    await link?.close();
  });

  it("a SUCCEEDED reply during an outage longer than the driver's timeouts is applied once the store is back", async () => {
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    let executions = 0;
    await gw.device("th-outage", "thermostat", {
      handler: async () => {
        executions++;
        await answered;
        return { result: { ok: true } };
      },
    });
    const operator = await gw.as("operator");
    const { sendCommand } = await operator.data(SendCommandDocument, {
      input: { deviceId: "th-outage", type: "thermostat.setTemperature", payload: { celsius: 20 }, timeoutSeconds: 120 },
    });
    await waitForStatus(operator, sendCommand.id, "DELIVERED", 20_000);

    await link.cut();
    answer();
    // 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 5 s of back-off: longer than the driver's 5 s server selection.
    await waitForMetric(gw.url, "gateway_reply_apply_retries_total", 6, {}, 60_000);
    await link.restore();

    const done = await waitForStatus(operator, sendCommand.id, "SUCCEEDED", 30_000);
    assert.deepEqual(done.result, { ok: true });
    assert.equal(executions, 1);
  });
});
