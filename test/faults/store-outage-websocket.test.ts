import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { print } from "graphql";
import type { Client } from "graphql-ws";
import { startEmbeddedStore, type EmbeddedStore } from "../../src/embedded/ferretdb";
import { createLogger } from "../../src/logger";
import { CommandsDocument, SendCommandDocument } from "../generated/graphql";
import { startTestGateway, type TestGateway } from "../kit/gateway";
import type { GraphQLTestClient } from "../kit/graphql-client";

type Result = { data?: unknown; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };

/**
 * Invariant: during a store outage WebSocket operations answer like HTTP ones: mutations UNAVAILABLE at
 * once (nothing waits for the driver), queries UNAVAILABLE when the driver gives up, and no internal
 * message (`connect ECONNREFUSED 127.0.0.1:…`) ever reaches the client.
 */
describe("store outage seen over WebSocket", () => {
  const dir = mkdtempSync(join(tmpdir(), "ws-outage-"));
  let store: EmbeddedStore;
  let kit: TestGateway;
  let operator: GraphQLTestClient;
  let ws: Client;
  let deviceId: string;

  before(async () => {
    store = await startEmbeddedStore({ dataDir: dir, log: createLogger("warn") });
    kit = await startTestGateway({ env: { MONGODB_URI: store.uri } });
    operator = await kit.as("operator");
    deviceId = (await kit.device(`th-${Date.now().toString(36)}`, "thermostat")).deviceId;
    ws = operator.ws();
    await new Promise<void>((resolve) => ws.on("connected", () => resolve()));
  });
  after(async () => {
    await ws?.dispose();
    await kit?.stop();
    await store?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const overWebSocket = (query: string, variables?: Record<string, unknown>) =>
    new Promise<Result>((resolve, reject) => ws.subscribe({ query, variables }, { next: (value) => resolve(value as Result), error: reject, complete: () => undefined }));

  it("a mutation is UNAVAILABLE at once, a query UNAVAILABLE without internals, as over HTTP", async () => {
    const send = { input: { deviceId, type: "device.reboot" } };
    await store.stop();
    while ((await fetch(`${kit.url}/readyz`)).status !== 503) await new Promise((resolve) => setTimeout(resolve, 50));

    const mutation = await overWebSocket(print(SendCommandDocument), send).catch((errors: unknown) => ({ errors }) as Result);
    assert.equal(mutation.errors?.[0]?.extensions?.code, "UNAVAILABLE", JSON.stringify(mutation));
    assert.equal((await operator.request(SendCommandDocument, send)).errors?.[0]?.extensions?.code, "UNAVAILABLE");

    const query = await overWebSocket(print(CommandsDocument), {});
    assert.equal(query.errors?.[0]?.extensions?.code, "UNAVAILABLE", JSON.stringify(query));
    assert.doesNotMatch(JSON.stringify(query), /ECONNREFUSED|127\.0\.0\.1/);

  });
});
