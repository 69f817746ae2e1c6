import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import type { GraphQLSchema } from "graphql";
import { buildGatewaySchema } from "../../resolvers/schema";
import { createGatewayPubSub } from "../../src/events/pubsub";
import { prepareOperation, QUERY_LIMITS } from "../../src/server/query-limits";

const FULL_COMMAND = `id deviceId type payload status source issuedBy idempotencyKey attempt timeoutSeconds deadline expiresAt createdAt updatedAt
  sentAt deliveredAt completedAt result error { code message } escalation { level at by note } history { status at actor detail } device { id site model }`;

describe("query limits (graphql-ws and Apollo use the same rules)", () => {
  it("the limits are the documented ones (README, CONTRACT)", () => {
    assert.deepEqual({ ...QUERY_LIMITS }, { maxDepth: 10, maxAliases: 15, maxCost: 20_000, maxTokens: 5_000 });
  });
  let schema: GraphQLSchema;
  before(async () => {
    schema = await buildGatewaySchema({ pubSub: createGatewayPubSub() });
  });
  const errors = (query: string, variables?: Record<string, unknown>) => {
    const prepared = prepareOperation(schema, { query, variables });
    return "document" in prepared ? [] : prepared.map((e) => e.message);
  };

  it("lets a full page of 200 commands with every field and its device through", () => {
    assert.deepEqual(errors(`query { commands(first: 200) { edges { cursor node { ${FULL_COMMAND} } } pageInfo { hasNextPage endCursor } } }`), []);
  });
  it("lets the introspection query through", () => {
    const query = `{ __schema { types { name fields { name args { name type { name kind ofType { name kind ofType { name kind ofType { name } } } } } } } } }`;
    assert.deepEqual(errors(query), []);
  });
  it(`refuses more than ${QUERY_LIMITS.maxAliases} aliases`, () => {
    const aliases = Array.from({ length: QUERY_LIMITS.maxAliases + 1 }, (_, i) => `a${i}: commandTypes { name }`).join(" ");
    assert.match(errors(`{ ${aliases} }`)[0] ?? "", /aliases/i);
    const allowed = Array.from({ length: QUERY_LIMITS.maxAliases }, (_, i) => `a${i}: commandTypes { name }`).join(" ");
    assert.deepEqual(errors(`{ ${allowed} }`), []);
  });
  it(`refuses depth beyond ${QUERY_LIMITS.maxDepth}, fragments included`, () => {
    assert.deepEqual(errors("{ commands { edges { node { device { id } } } } }"), []);
    const deep = `fragment F on Query { commands { edges { node { device { id } } } } }
      query { ...F a: commands { edges { node { history { status } error { code } escalation { by } device { id site } } } } }`;
    assert.deepEqual(errors(deep), []);
    // The schema has no cycles deep enough; a deep introspection-free selection through __type is one.
    const typeChain = "ofType { ".repeat(QUERY_LIMITS.maxDepth) + "name" + " }".repeat(QUERY_LIMITS.maxDepth);
    assert.match(errors(`{ __type(name: "Command") { fields { type { ${typeChain} } } } }`)[0] ?? "", /depth/i);
  });
  it(`refuses a cost over ${QUERY_LIMITS.maxCost}, counting first from literals and variables`, () => {
    const page = (n: string) => `commands(first: ${n}) { edges { node { ${FULL_COMMAND} } } }`;
    assert.match(errors(`{ a: ${page("200")} b: ${page("200")} c: ${page("200")} }`)[0] ?? "", /cost/i);
    assert.match(errors(`query($n: Int) { a: ${page("$n")} b: ${page("$n")} c: ${page("$n")} }`, { n: 200 })[0] ?? "", /cost/i);
    assert.deepEqual(errors(`query($n: Int) { a: ${page("$n")} b: ${page("$n")} c: ${page("$n")} }`, { n: 10 }), []);
  });
  it(`refuses a document of more than ${QUERY_LIMITS.maxTokens} tokens before validating it`, () => {
    const query = `{ ${"__typename ".repeat(QUERY_LIMITS.maxTokens)} }`;
    assert.match(errors(query)[0] ?? "", /token/i);
  });
  it("answers a syntax error as an error, not an exception", () => {
    assert.equal(errors("{ commands { ").length, 1);
  });
});
