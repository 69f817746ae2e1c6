import "reflect-metadata";
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { parse, type ExecutionResult, type GraphQLSchema } from "graphql";
import { CommandResolver } from "../../resolvers/commands/command.resolver";
import type { GatewayContext } from "../../resolvers/context.type";
import { buildGatewaySchema } from "../../resolvers/schema";
import { principalKey, type Principal } from "../../src/authz/principal";
import { createGatewayPubSub, Topic, type CommandUpdate, type GatewayPubSub } from "../../src/events/pubsub";
import { sharedSubscribe } from "../../src/server/shared-subscriptions";

const UPDATES = parse(`subscription Updates($deviceId: ID) { commandUpdated(deviceId: $deviceId) { id status } }`);

const operator = (sites: string[], tenant = "t1", expiresInMs = 60_000): Principal => ({ kind: "user", id: `op-${sites.join("-")}`, tenant, roles: ["operator"], sites, expiresAt: Date.now() + expiresInMs });

function update(id: string, site: string, status: CommandUpdate["status"] = "QUEUED", tenant = "t1"): CommandUpdate {
  const at = new Date();
  return { id, v: 1, tenant, site, deviceId: `dev-${site}`, type: "device.reboot", payload: {}, status, source: "OPERATOR", issuedBy: "op", attempt: 1, timeoutSeconds: 30, createdAt: at, updatedAt: at, history: [] };
}

type Stream = AsyncIterableIterator<ExecutionResult>;

/** Reads `n` results of a stream. */
async function take(stream: Stream, n: number): Promise<ExecutionResult[]> {
  const results: ExecutionResult[] = [];
  while (results.length < n) {
    const step = await stream.next();
    assert.equal(step.done, false, `the stream ended after ${results.length} of ${n} results`);
    results.push(step.value);
  }
  return results;
}

const ids = (results: ExecutionResult[]) => results.map((r) => `${(r.data?.commandUpdated as { id: string }).id}:${(r.data?.commandUpdated as { status: string }).status}`);

describe("shared subscriptions (one execution per event for subscribers asking the same as equal principals)", () => {
  let schema: GraphQLSchema;
  let pubSub: GatewayPubSub;
  before(async () => {
    pubSub = createGatewayPubSub();
    // The selected fields need no service.
    schema = await buildGatewaySchema({ pubSub, resolvers: [new CommandResolver(undefined as never, undefined as never)] });
  });
  const open = async (shared: ReturnType<typeof sharedSubscribe>, principal: Principal, variableValues: Record<string, unknown> = {}) => {
    const contextValue: GatewayContext = { principal };
    const stream = await shared({ schema, document: UPDATES, variableValues, contextValue });
    assert.ok(Symbol.asyncIterator in stream, "a stream");
    return stream as Stream;
  };
  const shared = () => sharedSubscribe((args) => principalKey((args.contextValue as GatewayContext).principal));

  it("equal principals (two connections, two tokens) get every event in order from one execution; others only what they may read", async () => {
    const subscribe = shared();
    const a1 = await open(subscribe, operator(["site-a"]));
    const a2 = await open(subscribe, operator(["site-a"], "t1", 120_000));
    const b = await open(subscribe, operator(["site-b"]));
    const other = await open(subscribe, operator(["site-a"], "t2"));
    pubSub.publish(Topic.CommandUpdated, update("c1", "site-a"));
    pubSub.publish(Topic.CommandUpdated, update("c2", "site-b"));
    pubSub.publish(Topic.CommandUpdated, update("c1", "site-a", "SENT"));
    pubSub.publish(Topic.CommandUpdated, update("c3", "site-a", "QUEUED", "t2"));
    const [r1, r2, rb, ro] = await Promise.all([take(a1, 2), take(a2, 2), take(b, 1), take(other, 1)]);
    assert.deepEqual(ids(r1), ["c1:QUEUED", "c1:SENT"]);
    assert.deepEqual(ids(r2), ["c1:QUEUED", "c1:SENT"]);
    assert.deepEqual(ids(rb), ["c2:QUEUED"]);
    assert.deepEqual(ids(ro), ["c3:QUEUED"]);
    // One execution: the very same result objects.
    assert.ok(r1[0] === r2[0] && r1[1] === r2[1], "site-a's two subscribers share each result");
    for (const s of [a1, a2, b, other]) await s.return!();
  });

  it("different variables are executed apart; a subscriber leaving ends only its own stream", async () => {
    const subscribe = shared();
    const all = await open(subscribe, operator(["site-a"]));
    const named = await open(subscribe, operator(["site-a"]), { deviceId: "dev-site-a" });
    const stays = await open(subscribe, operator(["site-a"]));
    pubSub.publish(Topic.CommandUpdated, update("d1", "site-a"));
    const [ra, rn, rs] = await Promise.all([take(all, 1), take(named, 1), take(stays, 1)]);
    assert.ok(ra[0] === rs[0] && ra[0] !== rn[0], "same variables share, others do not");
    assert.deepEqual(await all.return!(), { value: undefined, done: true });
    assert.deepEqual(await all.next(), { value: undefined, done: true });
    pubSub.publish(Topic.CommandUpdated, update("d2", "site-a"));
    assert.deepEqual(ids(await take(stays, 1)), ["d2:QUEUED"]);
    assert.deepEqual(ids(await take(named, 1)), ["d2:QUEUED"]);
    for (const s of [named, stays]) await s.return!();
  });

  it("a subscriber joining later gets the events after it joined; after everyone left, a new one starts afresh", async () => {
    const subscribe = shared();
    const first = await open(subscribe, operator(["site-a"]));
    pubSub.publish(Topic.CommandUpdated, update("e1", "site-a"));
    assert.deepEqual(ids(await take(first, 1)), ["e1:QUEUED"]);
    const later = await open(subscribe, operator(["site-a"]));
    pubSub.publish(Topic.CommandUpdated, update("e2", "site-a"));
    assert.deepEqual(ids(await take(later, 1)), ["e2:QUEUED"]);
    assert.deepEqual(ids(await take(first, 1)), ["e2:QUEUED"]);
    await first.return!();
    await later.return!();
    const again = await open(subscribe, operator(["site-a"]));
    pubSub.publish(Topic.CommandUpdated, update("e3", "site-a"));
    assert.deepEqual(ids(await take(again, 1)), ["e3:QUEUED"]);
    await again.return!();
  });

  it("an operation that is no stream (variables that do not coerce) is each subscriber's own errors", async () => {
    const subscribe = shared();
    for (let i = 0; i < 2; i++) {
      const result = await subscribe({ schema, document: UPDATES, variableValues: { deviceId: { not: "an id" } }, contextValue: { principal: operator(["site-a"]) } });
      assert.ok(!(Symbol.asyncIterator in result) && (result as ExecutionResult).errors?.length, "errors, not a stream");
    }
  });
});
