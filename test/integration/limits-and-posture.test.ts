import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { print } from "graphql";
import WebSocket from "ws";
import { CommandTypesDocument, SendCommandDocument } from "../generated/graphql";
import { SignJWT } from "jose";
import { startTestGateway, TEST_JWT_SECRET, type TestGateway } from "../kit/gateway";
import { uniqueName } from "../kit/store";
import { within } from "../kit/wait";

const RATE_LIMIT = 5;
const MAX_QUEUED = 2;

/** Opens a graphql-ws socket with `payload` as connection_init; resolves with the close code. */
function closeCode(url: string, payload: Record<string, unknown>): Promise<{ code: number; acknowledged: boolean; at: number }> {
  return new Promise((resolve, reject) => {
    let acknowledged = false;
    const socket = new WebSocket(`${url.replace("http", "ws")}/graphql`, "graphql-transport-ws");
    socket.on("open", () => socket.send(JSON.stringify({ type: "connection_init", payload })));
    socket.on("message", (message) => {
      if (JSON.parse(message.toString()).type === "connection_ack") acknowledged = true;
    });
    socket.on("close", (code) => resolve({ code, acknowledged, at: Date.now() }));
    socket.on("error", reject);
  });
}

describe("rate limits, queue cap and WebSocket credentials", () => {
  let kit: TestGateway;
  before(async () => {
    kit = await startTestGateway({ env: { RATE_LIMIT_MUTATIONS_PER_MINUTE: String(RATE_LIMIT), MAX_QUEUED_PER_DEVICE: String(MAX_QUEUED) } });
  });
  after(() => kit.stop());

  it(`the ${RATE_LIMIT + 1}th mutation of a principal in a minute is RATE_LIMITED, over HTTP and WebSocket alike; others go on`, async () => {
    const offline = uniqueName("th-");
    await kit.device(offline, "thermostat", { connect: false });
    const viewer = await kit.as("viewer", { sub: "burst" });
    const input = { input: { deviceId: offline, type: "device.reboot" } };
    for (let i = 0; i < RATE_LIMIT; i++) assert.equal(await viewer.errorCode(SendCommandDocument, input), "FORBIDDEN");
    const response = await viewer.request(SendCommandDocument, input);
    assert.equal(response.errors?.[0]?.extensions?.code, "RATE_LIMITED");
    assert.ok(Number(response.errors?.[0]?.extensions?.retryAfterSeconds) >= 1);

    // Over WebSocket too: a few at once, more than the bucket can refill meanwhile (one token per 60/RATE_LIMIT s).
    const ws = viewer.ws();
    try {
      const once = () =>
        new Promise<string | undefined>((resolve, reject) =>
          ws.subscribe(
            { query: print(SendCommandDocument), variables: input },
            {
              next: (result) => resolve(result.errors?.[0]?.extensions?.code as string | undefined),
              error: reject,
              complete: () => reject(new Error("completed without a result")),
            },
          ),
        );
      const codes = await within("the WebSocket mutations' answers", Promise.all([once(), once(), once()]), 10_000);
      assert.ok(codes.includes("RATE_LIMITED"), `RATE_LIMITED over WebSocket: ${codes.join(", ")}`);
      assert.deepEqual(codes.filter((c) => c !== "RATE_LIMITED" && c !== "FORBIDDEN"), []);
    } finally {
      await ws.dispose();
    }
    // Queries are not limited, and another principal has its own bucket.
    await viewer.data(CommandTypesDocument);
    assert.equal(await (await kit.as("viewer", { sub: "calm" })).errorCode(SendCommandDocument, input), "FORBIDDEN");
  });

  it(`a device with ${MAX_QUEUED} QUEUED commands takes no more (RATE_LIMITED on deviceId); a resend of a stored one still answers`, async () => {
    const offline = uniqueName("th-");
    await kit.device(offline, "thermostat", { connect: false });
    const operator = await kit.as("operator", { sub: "queue-filler" });
    const input = (idempotencyKey?: string) => ({ input: { deviceId: offline, type: "device.reboot", idempotencyKey } });
    const first = (await operator.data(SendCommandDocument, input("k1"))).sendCommand;
    await operator.data(SendCommandDocument, input());
    const before = await kit.gateway.repositories.commands.count();
    const refused = await operator.request(SendCommandDocument, input());
    assert.deepEqual([refused.errors?.[0]?.extensions?.code, refused.errors?.[0]?.extensions?.field], ["RATE_LIMITED", "deviceId"]);
    assert.ok(Number(refused.errors?.[0]?.extensions?.retryAfterSeconds) >= 1);
    assert.equal((await operator.data(SendCommandDocument, input("k1"))).sendCommand.id, first.id);
    assert.equal(await kit.gateway.repositories.commands.count(), before);
  });

  it("WebSocket: no credentials 4401; a JWT that expires while connected is closed with 4401 then", async () => {
    const refused = await within("the close without credentials", closeCode(kit.url, {}), 10_000);
    assert.deepEqual([refused.code, refused.acknowledged], [4401, false]);
    // Expired 25 s ago: inside the 30 s tolerance for about 5 s more, so the connection is accepted, and
    // closed when the tolerance runs out.
    const exp = Math.floor(Date.now() / 1000) - 25;
    const expiring = await new SignJWT({ tenant: kit.tenant, roles: ["viewer"] })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("x")
      .setExpirationTime(exp)
      .sign(new TextEncoder().encode(TEST_JWT_SECRET));
    const closed = await within("the expiring connection's close", closeCode(kit.url, { authorization: `Bearer ${expiring}` }), 20_000);
    assert.deepEqual({ code: closed.code, acknowledged: closed.acknowledged }, { code: 4401, acknowledged: true });
    assert.ok(closed.at >= (exp + 29) * 1000, `closed when the token ran out, not at once: ${closed.at - exp * 1000} ms after exp`);
  });
});

describe("production posture (NODE_ENV=production)", () => {
  const introspection = { query: "{ __schema { queryType { name } } }" };
  const post = async (kit: TestGateway, body: unknown) => {
    const client = await kit.as("viewer");
    const response = await fetch(`${kit.url}/graphql`, { method: "POST", headers: client.headers(), body: JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as { data?: unknown; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> } };
  };

  const landingPage = async (kit: TestGateway) => (await fetch(`${kit.url}/graphql`, { headers: { accept: "text/html" } })).text();

  describe("by default", () => {
    let kit: TestGateway;
    before(async () => (kit = await startTestGateway({ env: { NODE_ENV: "production" } })));
    after(() => kit.stop());

    it("refuses introspection", async () => {
      const { body } = await post(kit, introspection);
      assert.equal(body.data, undefined);
      assert.equal(body.errors?.[0]?.extensions?.code, "GRAPHQL_VALIDATION_FAILED");
    });
    it("gives no schema hints in errors", async () => {
      const { body } = await post(kit, { query: "{ comands { edges { cursor } } }" });
      assert.equal(body.errors?.[0]?.extensions?.code, "GRAPHQL_VALIDATION_FAILED");
      assert.doesNotMatch(JSON.stringify(body), /Did you mean|commands/);
    });
    it("serves no landing page", async () => {
      assert.doesNotMatch(await landingPage(kit), /<html/i);
    });
  });

  describe("with GRAPHQL_INTROSPECTION=1", () => {
    let kit: TestGateway;
    before(async () => (kit = await startTestGateway({ env: { NODE_ENV: "production", GRAPHQL_INTROSPECTION: "1" } })));
    after(() => kit.stop());

    it("answers introspection and serves the landing page", async () => {
      const { body } = await post(kit, introspection);
      assert.deepEqual(body.data, { __schema: { queryType: { name: "Query" } } });
      assert.match(await landingPage(kit), /<html/i);
    });
  });
});
