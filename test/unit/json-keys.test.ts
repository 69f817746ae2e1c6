import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { escapeJsonKeys, unescapeJsonKeys } from "../../src/store/json-keys";

const keysOf = (value: unknown): string[] =>
  Array.isArray(value) ? value.flatMap(keysOf) : value && typeof value === "object" ? Object.entries(value).flatMap(([k, v]) => [k, ...keysOf(v)]) : [];

describe("JSON keys stored as data", () => {
  const hostile = {
    $set: { status: "FAILED" },
    $where: "sleep(1000)",
    "a.b": { $gt: "", "~1": 1, "~2x": 2, "~": 3, "$$": 4, "x$": 5 },
    list: [{ $ne: null }, 1, "$literal", null, [{ "k.k": true }]],
    plain: { celsius: 21 },
  };

  it("escapes every key a store would refuse or read as an operator, and nothing else", () => {
    const stored = escapeJsonKeys(hostile);
    for (const key of keysOf(stored)) assert.ok(!key.startsWith("$") && !key.includes("."), key);
    assert.deepEqual((stored as Record<string, unknown>).plain, { celsius: 21 });
    assert.deepEqual((stored as { list: unknown[] }).list[2], "$literal", "values are not touched");
  });

  it("restores exactly what came in, including keys that look like escapes", () => {
    assert.deepEqual(unescapeJsonKeys(escapeJsonKeys(hostile)), hostile);
    for (const key of ["~0", "~1", "~2", "~3", "~~", "$~0.", ".$", "~01", "a\u0000b", "\u0000~3"]) {
      assert.deepEqual(unescapeJsonKeys(escapeJsonKeys({ [key]: key })), { [key]: key }, key);
    }
  });

  it("escapes a NUL in a key (BSON keys are C strings)", () => {
    assert.deepEqual(escapeJsonKeys({ "a\u0000b": { "\u0000": 1 } }), { "a~3b": { "~3": 1 } });
  });

  it("leaves scalars and documents without such keys as they are", () => {
    for (const value of [null, 1, "x", true, { a: 1, b: [1, { c: "d" }] }]) assert.deepEqual(escapeJsonKeys(value), value);
  });
});
