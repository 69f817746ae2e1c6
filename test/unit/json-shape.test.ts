import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { exceedsDepth, findShapeProblem } from "../../src/common/json-shape";

/** `{ a: { a: … 1 } }` with `levels` objects, built without recursion. */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { a: 1 };
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}

describe("JSON shape checks (iterative)", () => {
  it("bounds depth without recursing, 100,000 levels included", () => {
    assert.equal(exceedsDepth(nested(3), 3), false);
    assert.equal(exceedsDepth(nested(4), 3), true);
    assert.equal(exceedsDepth([[[1]]], 3), false);
    assert.equal(exceedsDepth([[[[1]]]], 3), true);
    assert.equal(exceedsDepth(nested(100_000), 32), true);
    for (const scalar of [null, 1, "x", true]) assert.equal(exceedsDepth(scalar, 0), false);
  });

  it("names the path of the first container too deep", () => {
    assert.deepEqual(findShapeProblem({ input: nested(3) }, 3), { problem: "too_deep", path: ["input", "a", "a"] });
    assert.equal(findShapeProblem({ input: nested(2) }, 3), undefined);
  });

  it("finds lone surrogates in values and keys, and lets well-formed pairs through", () => {
    assert.deepEqual(findShapeProblem({ input: { idempotencyKey: "k\ud800" } }, 5), { problem: "ill_formed_string", path: ["input", "idempotencyKey"] });
    assert.deepEqual(findShapeProblem({ p: [1, "\udbff"] }, 5), { problem: "ill_formed_string", path: ["p", 1] });
    assert.deepEqual(findShapeProblem({ p: { "k\udc00": 1 } }, 5), { problem: "ill_formed_string", path: ["p", "k\udc00"] });
    assert.equal(findShapeProblem({ p: { "😀": "😀 ok", d: new Date(0) } }, 5), undefined);
  });
});
