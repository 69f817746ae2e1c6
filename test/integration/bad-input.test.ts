import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SendCommandDocument, type SendCommandMutationVariables } from "../generated/graphql";
import type { DeviceClient } from "../../src/device-sdk";
import { GraphQLTestClient } from "../kit/graphql-client";
import { startTestGateway, TEST_JWT_SECRET, waitForStatus, type TestGateway } from "../kit/gateway";
import { uniqueName } from "../kit/store";
import { signToken } from "../../src/auth/jwt";

/** Each refusal carries the contract's code, and the store and the device see nothing. */
describe("bad input to sendCommand", () => {
  let kit: TestGateway;
  let thermostat: DeviceClient;
  let foreignDevice: string;
  let operator: GraphQLTestClient;

  before(async () => {
    kit = await startTestGateway();
    thermostat = await kit.device(uniqueName("th-"), "thermostat");
    operator = await kit.as("operator");
    // A device of another tenant, registered by that tenant's admin.
    foreignDevice = uniqueName("th-");
    await kit.gateway.services.devices.register({ kind: "user", id: "other-admin", tenant: "other-tenant", roles: ["admin"] }, {
      id: foreignDevice,
      site: "site-a",
      model: "thermostat",
    });
  });
  after(() => kit.stop());

  const input = (overrides: Partial<SendCommandMutationVariables["input"]> = {}): SendCommandMutationVariables => ({
    input: { deviceId: thermostat.deviceId, type: "thermostat.setTemperature", payload: { celsius: 21 }, ...overrides },
  });

  /** Runs the request and checks that nothing was stored or published. */
  async function refused(run: () => Promise<{ code?: unknown; field?: unknown; pointer?: unknown }>) {
    const before = await kit.gateway.repositories.commands.count();
    const received = thermostat.received;
    const result = await run();
    // Barrier: a legitimate command sent now reaches the device after anything the refused one caused.
    const { sendCommand: marker } = await operator.data(SendCommandDocument, input());
    await waitForStatus(operator, marker.id, "SUCCEEDED");
    assert.equal(await kit.gateway.repositories.commands.count(), before + 1, "nothing stored but the marker");
    assert.equal(thermostat.received, received + 1, "nothing published to the device but the marker");
    return result;
  }

  const viaGraphQL = (client: GraphQLTestClient, variables: SendCommandMutationVariables) => async () => {
    const response = await client.request(SendCommandDocument, variables);
    assert.equal(response.data?.sendCommand ?? null, null);
    return { ...response.errors?.[0]?.extensions };
  };

  it("payload out of range: BAD_USER_INPUT pointing at /celsius", async () => {
    const error = await refused(viaGraphQL(operator, input({ payload: { celsius: 36 } })));
    assert.deepEqual([error.code, error.field, error.pointer], ["BAD_USER_INPUT", "payload", "/celsius"]);
  });

  it("extra payload field: BAD_USER_INPUT pointing at it", async () => {
    const error = await refused(viaGraphQL(operator, input({ payload: { celsius: 21, fan: "on" } })));
    assert.deepEqual([error.code, error.pointer], ["BAD_USER_INPUT", "/fan"]);
  });

  it("a type the device's model does not accept: BAD_USER_INPUT on type", async () => {
    const error = await refused(viaGraphQL(operator, input({ type: "valve.open", payload: { seconds: 10 } })));
    assert.deepEqual([error.code, error.field], ["BAD_USER_INPUT", "type"]);
  });

  it("an unknown command type: BAD_USER_INPUT on type", async () => {
    const error = await refused(viaGraphQL(operator, input({ type: "thermostat.selfDestruct" })));
    assert.deepEqual([error.code, error.field], ["BAD_USER_INPUT", "type"]);
  });

  it("an unknown device: NOT_FOUND", async () => {
    const error = await refused(viaGraphQL(operator, input({ deviceId: uniqueName("ghost-") })));
    assert.equal(error.code, "NOT_FOUND");
  });

  it("another tenant's device: NOT_FOUND, exactly like a missing one", async () => {
    const error = await refused(viaGraphQL(operator, input({ deviceId: foreignDevice })));
    assert.equal(error.code, "NOT_FOUND");
  });

  it("a timeout out of range: BAD_USER_INPUT on timeoutSeconds", async () => {
    const error = await refused(viaGraphQL(operator, input({ timeoutSeconds: 0 })));
    assert.deepEqual([error.code, error.field], ["BAD_USER_INPUT", "timeoutSeconds"]);
  });

  it("a viewer may not send: FORBIDDEN", async () => {
    const error = await refused(viaGraphQL(await kit.as("viewer"), input()));
    assert.equal(error.code, "FORBIDDEN");
  });

  it("an operator outside the device's site: FORBIDDEN", async () => {
    const error = await refused(viaGraphQL(await kit.as("operator", { sites: ["site-z"] }), input()));
    assert.equal(error.code, "FORBIDDEN");
  });

  it("no token: UNAUTHENTICATED with HTTP 401", async () => {
    const client = new GraphQLTestClient(kit.url);
    const error = await refused(async () => {
      const response = await client.request(SendCommandDocument, input());
      assert.equal(response.status, 401);
      return { ...response.errors?.[0]?.extensions };
    });
    assert.equal(error.code, "UNAUTHENTICATED");
  });

  it("a token signed with another secret: UNAUTHENTICATED", async () => {
    const forged = await signToken("another-secret-0123456789-abcdefghijklmnop", { sub: "x", tenant: kit.tenant, roles: ["admin"] });
    const error = await refused(viaGraphQL(new GraphQLTestClient(kit.url, { token: forged }), input()));
    assert.equal(error.code, "UNAUTHENTICATED");
  });

  it("an expired token: UNAUTHENTICATED", async () => {
    const expired = await signToken(TEST_JWT_SECRET, { sub: "x", tenant: kit.tenant, roles: ["admin"] }, "-2m");
    const error = await refused(viaGraphQL(new GraphQLTestClient(kit.url, { token: expired }), input()));
    assert.equal(error.code, "UNAUTHENTICATED");
  });

  it("a malformed JSON body: BAD_USER_INPUT with HTTP 400", async () => {
    const error = await refused(async () => {
      const response = await fetch(`${kit.url}/graphql`, { method: "POST", headers: operator.headers(), body: '{"query": "mutation {' });
      assert.equal(response.status, 400);
      const body = (await response.json()) as { errors: Array<{ extensions: Record<string, unknown> }> };
      return body.errors[0]!.extensions;
    });
    assert.equal(error.code, "BAD_USER_INPUT");
  });

  it("a body over the size limit: HTTP 413", async () => {
    const error = await refused(async () => {
      const response = await fetch(`${kit.url}/graphql`, {
        method: "POST",
        headers: operator.headers(),
        body: JSON.stringify({ query: "mutation { x }", variables: { pad: "x".repeat(200_000) } }),
      });
      assert.equal(response.status, 413);
      const body = (await response.json()) as { errors: Array<{ extensions: Record<string, unknown> }> };
      return body.errors[0]!.extensions;
    });
    assert.equal(error.code, "BAD_USER_INPUT");
  });
});
