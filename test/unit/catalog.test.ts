import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { accepts, CommandCatalog, MAX_PAYLOAD_BYTES } from "../../src/catalog/catalog";
import { ANY_MODEL, BUILT_IN_COMMAND_TYPES, type CommandTypeDefinition } from "../../src/catalog/command-types";
import { GatewayError } from "../../src/errors";

const catalog = new CommandCatalog();

/** Asserts that `fn` throws a BAD_USER_INPUT GatewayError whose details contain `details`. */
function assertBadInput(fn: () => unknown, details: Record<string, unknown>): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof GatewayError, `expected a GatewayError, got ${String(error)}`);
    assert.equal(error.code, "BAD_USER_INPUT");
    for (const [key, value] of Object.entries(details)) assert.deepEqual(error.details[key], value, `details.${key}`);
    return true;
  });
}

const refusedAt = (type: string, payload: unknown, pointer: string) => assertBadInput(() => catalog.validatePayload(type, payload), { field: "payload", pointer });

describe("catalog: the contract's command types", () => {
  it("the payload limit is the documented 16 KiB", () => assert.equal(MAX_PAYLOAD_BYTES, 16 * 1024));
  it("lists exactly the four built-in types with their models", () => {
    const models = Object.fromEntries(catalog.list().map((d) => [d.name, [...d.models].sort()]));
    assert.deepEqual(models, {
      "thermostat.setTemperature": ["thermostat"],
      "valve.open": ["valve"],
      "valve.close": ["valve"],
      "device.reboot": [ANY_MODEL],
    });
  });

  it("the default catalog is the built-in list", () => {
    assert.deepEqual(
      catalog.list().map((d) => d.name).sort(),
      BUILT_IN_COMMAND_TYPES.map((d) => d.name).sort(),
    );
  });

  it("every type has a description, an object payload schema and a positive default timeout", () => {
    for (const d of catalog.list()) {
      assert.ok(d.description.length > 0, d.name);
      assert.equal((d.payloadSchema as { type?: string }).type, "object", d.name);
      assert.ok(Number.isInteger(d.defaultTimeoutSeconds) && d.defaultTimeoutSeconds > 0, d.name);
    }
  });

  it("find returns the definition or undefined", () => {
    assert.equal(catalog.find("valve.open")?.name, "valve.open");
    assert.equal(catalog.find("valve.explode"), undefined);
  });
});

describe("catalog: requireFor (type × model)", () => {
  it("accepts each type for its model", () => {
    assert.equal(catalog.requireFor("thermostat.setTemperature", "thermostat").name, "thermostat.setTemperature");
    assert.equal(catalog.requireFor("valve.open", "valve").name, "valve.open");
    assert.equal(catalog.requireFor("valve.close", "valve").name, "valve.close");
  });

  it("device.reboot is accepted by any model", () => {
    for (const model of ["thermostat", "valve", "lamp", "some-future-model"]) {
      assert.equal(catalog.requireFor("device.reboot", model).name, "device.reboot", model);
      assert.ok(accepts(catalog.find("device.reboot")!, model), model);
    }
  });

  it("a type the model does not accept is BAD_USER_INPUT on field type", () => {
    assertBadInput(() => catalog.requireFor("thermostat.setTemperature", "valve"), { field: "type" });
    assertBadInput(() => catalog.requireFor("valve.open", "thermostat"), { field: "type" });
    assertBadInput(() => catalog.requireFor("valve.close", "lamp"), { field: "type" });
    assert.equal(accepts(catalog.find("valve.open")!, "thermostat"), false);
  });

  it("an unknown type is BAD_USER_INPUT on field type (requireFor and validatePayload)", () => {
    assertBadInput(() => catalog.requireFor("valve.explode", "valve"), { field: "type" });
    assertBadInput(() => catalog.validatePayload("valve.explode", {}), { field: "type" });
  });
});

describe("catalog: thermostat.setTemperature { celsius: number 5..35 }", () => {
  const type = "thermostat.setTemperature";

  it("accepts the boundaries and a value inside", () => {
    assert.deepEqual(catalog.validatePayload(type, { celsius: 5 }), { celsius: 5 });
    assert.deepEqual(catalog.validatePayload(type, { celsius: 35 }), { celsius: 35 });
    assert.deepEqual(catalog.validatePayload(type, { celsius: 21.5 }), { celsius: 21.5 });
  });

  it("refuses just outside the boundaries, at /celsius", () => {
    refusedAt(type, { celsius: 4.99 }, "/celsius");
    refusedAt(type, { celsius: 35.01 }, "/celsius");
  });

  it("refuses a string, at /celsius", () => {
    refusedAt(type, { celsius: "20" }, "/celsius");
  });

  it("refuses a missing celsius, at /celsius", () => {
    refusedAt(type, {}, "/celsius");
  });

  it("refuses an extra field, at /extra", () => {
    refusedAt(type, { celsius: 20, extra: 1 }, "/extra");
  });

  it("null or undefined payload is treated as {} and so refused at /celsius", () => {
    refusedAt(type, null, "/celsius");
    refusedAt(type, undefined, "/celsius");
  });

  it("refuses a payload that is not an object, at the root", () => {
    refusedAt(type, [20], "");
    refusedAt(type, 20, "");
  });
});

describe("catalog: valve.open { seconds: integer 1..3600 }", () => {
  const type = "valve.open";

  it("accepts the boundaries", () => {
    assert.deepEqual(catalog.validatePayload(type, { seconds: 1 }), { seconds: 1 });
    assert.deepEqual(catalog.validatePayload(type, { seconds: 3600 }), { seconds: 3600 });
  });

  it("refuses 0, 3601 and a non-integer, at /seconds", () => {
    refusedAt(type, { seconds: 0 }, "/seconds");
    refusedAt(type, { seconds: 3601 }, "/seconds");
    refusedAt(type, { seconds: 1.5 }, "/seconds");
  });

  it("refuses a missing seconds, at /seconds", () => {
    refusedAt(type, {}, "/seconds");
  });
});

describe("catalog: empty payload types", () => {
  it("valve.close accepts {} and refuses {a:1} at /a", () => {
    assert.deepEqual(catalog.validatePayload("valve.close", {}), {});
    refusedAt("valve.close", { a: 1 }, "/a");
  });

  it("valve.close: null and undefined payloads are treated as {}", () => {
    assert.deepEqual(catalog.validatePayload("valve.close", null), {});
    assert.deepEqual(catalog.validatePayload("valve.close", undefined), {});
  });

  it("device.reboot accepts {} and refuses an extra field", () => {
    assert.deepEqual(catalog.validatePayload("device.reboot", {}), {});
    refusedAt("device.reboot", { now: true }, "/now");
  });

  it("escapes ~ and / in the pointer of an extra field (RFC 6901)", () => {
    refusedAt("valve.close", { "a/b~c": 1 }, "/a~1b~0c");
  });
});

describe("catalog: payload size", () => {
  it(`refuses a payload larger than MAX_PAYLOAD_BYTES (${MAX_PAYLOAD_BYTES}) with BAD_USER_INPUT on payload`, () => {
    const big = { pad: "x".repeat(MAX_PAYLOAD_BYTES) };
    assertBadInput(() => catalog.validatePayload("valve.close", big), { field: "payload", pointer: "" });
    assertBadInput(() => catalog.validatePayload("thermostat.setTemperature", { celsius: 20, ...big }), { field: "payload" });
  });

  it("the limit is on serialised bytes: exactly MAX_PAYLOAD_BYTES passes, one byte more does not", () => {
    const definition: CommandTypeDefinition = {
      name: "test.blob",
      description: "a blob",
      payloadSchema: { type: "object", additionalProperties: false, properties: { s: { type: "string" } } },
      defaultTimeoutSeconds: 10,
      defaultExpiresInSeconds: null,
      models: [ANY_MODEL],
      supersedes: false,
    };
    const custom = new CommandCatalog([definition]);
    const overhead = Buffer.byteLength(JSON.stringify({ s: "" }));
    const atLimit = { s: "x".repeat(MAX_PAYLOAD_BYTES - overhead) };
    assert.equal(Buffer.byteLength(JSON.stringify(atLimit)), MAX_PAYLOAD_BYTES);
    assert.deepEqual(custom.validatePayload("test.blob", atLimit), atLimit);
    assertBadInput(() => custom.validatePayload("test.blob", { s: atLimit.s + "x" }), { field: "payload", pointer: "" });
    // multi-byte characters count as bytes, not as characters
    const euros = { s: "€".repeat(Math.floor(MAX_PAYLOAD_BYTES / 3)) };
    assert.ok(JSON.stringify(euros).length < MAX_PAYLOAD_BYTES);
    assertBadInput(() => custom.validatePayload("test.blob", euros), { field: "payload", pointer: "" });
  });
});
