import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CommandCatalog } from "../../src/catalog/catalog";
import { GatewayError } from "../../src/errors";
import { checkLimitSchemaShape, checkSatisfiable, LimitValidators, narrowSchema } from "../../src/payload-limits/limit-schema";
import { isValidSubject, payloadLimitId, subjectsOf } from "../../src/payload-limits/payload-limit";

const catalog = new CommandCatalog();
const validators = new LimitValidators();
const schemaOf = (type: string) => catalog.find(type)!.payloadSchema as Record<string, unknown>;
const thermostat = schemaOf("thermostat.setTemperature");
const valveOpen = schemaOf("valve.open");

/** Runs every check setPayloadLimit makes on a schema. */
function check(type: string, schema: unknown): void {
  checkLimitSchemaShape(schema);
  validators.compile(schema);
  checkSatisfiable(type, schemaOf(type), schema, validators);
}

function assertRefused(type: string, schema: unknown, pointer: string): void {
  assert.throws(
    () => check(type, schema),
    (error: unknown) => {
      assert.ok(error instanceof GatewayError, String(error));
      assert.equal(error.code, "BAD_USER_INPUT");
      assert.equal(error.details.field, "schema");
      assert.equal(error.details.pointer, pointer, error.message);
      return true;
    },
    JSON.stringify(schema),
  );
}

describe("payload limits: which schemas setPayloadLimit accepts", () => {
  it("accepts ranges inside the type's, enums and consts the type allows, and composite keywords", () => {
    for (const schema of [
      { properties: { celsius: { minimum: 18, maximum: 24 } } },
      { type: "object", properties: { celsius: { type: "number", exclusiveMinimum: 5, exclusiveMaximum: 35 } }, required: ["celsius"] },
      { properties: { celsius: { enum: [18, 21, 99] } } },
      { properties: { celsius: { const: 35 } } },
      { properties: { celsius: { not: { const: 30 } } } },
      { anyOf: [{ properties: { celsius: { maximum: 10 } } }, { properties: { celsius: { minimum: 30 } } }] },
    ]) {
      check("thermostat.setTemperature", schema);
    }
    check("valve.open", { properties: { seconds: { minimum: 1.5, maximum: 2 } } });
  });

  it("refuses a limit that can never be met, pointing at the keyword", () => {
    assertRefused("thermostat.setTemperature", { properties: { celsius: { minimum: 40 } } }, "/properties/celsius/minimum");
    assertRefused("thermostat.setTemperature", { properties: { celsius: { maximum: 4.5 } } }, "/properties/celsius/maximum");
    assertRefused("thermostat.setTemperature", { properties: { celsius: { minimum: 24, maximum: 18 } } }, "/properties/celsius/minimum");
    assertRefused("thermostat.setTemperature", { properties: { celsius: { exclusiveMaximum: 5 } } }, "/properties/celsius/exclusiveMaximum");
    assertRefused("thermostat.setTemperature", { properties: { celsius: { type: "string" } } }, "/properties/celsius/type");
    assertRefused("thermostat.setTemperature", { properties: { celsius: { enum: [1, 99, "20"] } } }, "/properties/celsius/enum");
    assertRefused("thermostat.setTemperature", { properties: { celsius: false } }, "/properties/celsius");
    // an integer field with no integer in range
    assertRefused("valve.open", { properties: { seconds: { minimum: 1.2, maximum: 1.8 } } }, "/properties/seconds/minimum");
    // fields the type does not have
    assertRefused("thermostat.setTemperature", { properties: { celcius: { maximum: 24 } } }, "/properties/celcius");
    assertRefused("thermostat.setTemperature", { required: ["fan"] }, "/required");
    assertRefused("thermostat.setTemperature", { type: "array" }, "/type");
  });

  it("refuses what is not a bounded JSON Schema of the allowed keywords", () => {
    assertRefused("thermostat.setTemperature", [], "");
    assertRefused("thermostat.setTemperature", "celsius < 24", "");
    assertRefused("thermostat.setTemperature", { properties: { celsius: { pattern: "(a+)+$" } } }, "/properties/celsius/pattern");
    assertRefused("thermostat.setTemperature", { $ref: "#/definitions/x" }, "/$ref");
    assertRefused("thermostat.setTemperature", { properties: { celsius: { format: "email" } } }, "/properties/celsius/format");
    assertRefused("thermostat.setTemperature", { properties: { celsius: { minimum: "18" } } }, "");
    assertRefused("thermostat.setTemperature", { allOf: [] }, "/allOf");
    assertRefused("thermostat.setTemperature", { description: "x".repeat(5000) }, "");
    let deep: Record<string, unknown> = { maximum: 24 };
    for (let i = 0; i < 9; i++) deep = { not: deep };
    assertRefused("thermostat.setTemperature", { properties: { celsius: deep } }, "/properties/celsius/not/not/not/not/not/not/not");
  });

  it("compiles each distinct schema once", () => {
    const compile = new LimitValidators(2);
    const a = compile.compile({ properties: { celsius: { maximum: 24 } } });
    assert.equal(compile.compile({ properties: { celsius: { maximum: 24 } } }), a);
    compile.compile({ properties: { celsius: { maximum: 25 } } });
    compile.compile({ properties: { celsius: { maximum: 26 } } });
    assert.notEqual(compile.compile({ properties: { celsius: { maximum: 24 } } }), a, "the oldest was dropped beyond the bound");
  });
});

describe("payload limits: effectivePayloadSchema", () => {
  it("merges numeric ranges into the type's schema, the tighter bound winning", () => {
    const narrowed = narrowSchema(thermostat, [
      { properties: { celsius: { minimum: 18, maximum: 26 } } },
      { properties: { celsius: { exclusiveMaximum: 24 } }, required: ["celsius"] },
    ]);
    assert.deepEqual(narrowed, {
      type: "object",
      additionalProperties: false,
      required: ["celsius"],
      properties: { celsius: { type: "number", minimum: 18, exclusiveMaximum: 24 } },
    });
    assert.deepEqual(thermostat.properties, { celsius: { type: "number", minimum: 5, maximum: 35 } }, "the catalog's schema is untouched");
  });

  it("keeps a limit it cannot merge under allOf, and the type's schema as it is without limits", () => {
    const odd = { properties: { celsius: { enum: [18, 21] } } };
    assert.deepEqual(narrowSchema(thermostat, [odd]), { allOf: [thermostat, odd] });
    assert.deepEqual(narrowSchema(valveOpen, []), valveOpen);
    const integerNarrowed = narrowSchema(valveOpen, [{ properties: { seconds: { type: "number", maximum: 60 } } }]);
    assert.deepEqual((integerNarrowed.properties as Record<string, unknown>).seconds, { type: "integer", minimum: 1, maximum: 60 });
  });
});

describe("payload limits: subjects", () => {
  it("accepts role, apikey and rule subjects only", () => {
    for (const subject of ["role:admin", "role:operator", "role:viewer", "apikey:3f1c-9a", "rule:0b5e2c1a"]) assert.ok(isValidSubject(subject), subject);
    for (const subject of ["role:root", "user:alice", "apikey:", "rule:$gt", "role:operator ", ""]) assert.ok(!isValidSubject(subject), subject);
  });

  it("a principal's subjects: its roles, its key, its rule", () => {
    assert.deepEqual(subjectsOf({ kind: "user", id: "u", tenant: "t", roles: ["operator", "viewer"] }), ["role:operator", "role:viewer"]);
    assert.deepEqual(subjectsOf({ kind: "apiKey", id: "k1", tenant: "t", commandTypes: [] }), ["apikey:k1"]);
    assert.deepEqual(subjectsOf({ kind: "rule", id: "rule:r1", tenant: "t", commandType: "valve.close" }), ["rule:r1"]);
  });

  it("one id per (tenant, subject, site, type)", () => {
    const id = payloadLimitId("t", "role:operator", undefined, "valve.open");
    assert.equal(payloadLimitId("t", "role:operator", undefined, "valve.open"), id);
    assert.notEqual(payloadLimitId("t", "role:operator", "s", "valve.open"), id);
    assert.notEqual(payloadLimitId("u", "role:operator", undefined, "valve.open"), id);
    assert.notEqual(payloadLimitId("t", "role:viewer", undefined, "valve.open"), id);
  });
});
