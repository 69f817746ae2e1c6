import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeCursor, encodeCursor, MAX_PAGE_SIZE, pageSize, toPage } from "../../src/common/pagination";
import { GatewayError } from "../../src/errors";

function assertBadInput(fn: () => unknown, field: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof GatewayError, `expected a GatewayError, got ${String(error)}`);
    assert.equal(error.code, "BAD_USER_INPUT");
    assert.equal(error.details.field, field);
    return true;
  });
}

const b64 = (text: string) => Buffer.from(text).toString("base64url");

describe("pagination: cursors", () => {
  it("round trips a position", () => {
    const cursor = encodeCursor(["2030-01-01T00:00:00.000Z", "cmd-42"]);
    assert.deepEqual(decodeCursor(cursor, ["string", "string"]), ["2030-01-01T00:00:00.000Z", "cmd-42"]);
  });

  it("round trips numbers and mixed positions", () => {
    assert.deepEqual(decodeCursor(encodeCursor([1893456000000, "d-1"]), ["number", "string"]), [1893456000000, "d-1"]);
    assert.deepEqual(decodeCursor(encodeCursor(["a/b+c", 0, "é€"]), ["string", "number", "string"]), ["a/b+c", 0, "é€"]);
  });

  it("is opaque and URL safe (base64url, no JSON visible)", () => {
    const cursor = encodeCursor(["x?y&z", 1]);
    assert.match(cursor, /^[A-Za-z0-9_-]+$/);
    assert.ok(!cursor.includes("x?y"));
  });

  it("different positions give different cursors", () => {
    assert.notEqual(encodeCursor(["a", 1]), encodeCursor(["a", 2]));
  });

  for (const [label, cursor] of [
    ["empty string", ""],
    ["garbage", "!!!not-a-cursor!!!"],
    ["base64 of non-JSON", b64("hello")],
    ["base64 of a JSON object", b64('{"a":1}')],
    ["base64 of JSON null", b64("null")],
    ["base64 of a string", b64('"abc"')],
    ["array too short", b64('["a"]')],
    ["array too long", b64('["a","b","c"]')],
    ["wrong element types", b64("[1,2]")],
    ["null element", b64('["a",null]')],
    ["nested array element", b64('["a",["b"]]')],
  ] as const) {
    it(`refuses ${label} with BAD_USER_INPUT on field "after"`, () => {
      assertBadInput(() => decodeCursor(cursor, ["string", "string"]), "after");
    });
  }

  it("a cursor of another list (other shape) is refused", () => {
    assertBadInput(() => decodeCursor(encodeCursor(["2030-01-01T00:00:00.000Z", "cmd-1"]), ["number", "string"]), "after");
  });
});

describe("pagination: pageSize", () => {
  it("null and undefined give the default 50", () => {
    assert.equal(pageSize(null), 50);
    assert.equal(pageSize(undefined), 50);
  });

  it("accepts 1 and MAX_PAGE_SIZE (200)", () => {
    assert.equal(MAX_PAGE_SIZE, 200);
    assert.equal(pageSize(1), 1);
    assert.equal(pageSize(200), 200);
    assert.equal(pageSize(37), 37);
  });

  for (const bad of [0, -1, 201, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    it(`refuses ${bad} with BAD_USER_INPUT on field "first"`, () => {
      assertBadInput(() => pageSize(bad), "first");
    });
  }
});

describe("pagination: toPage", () => {
  const cursorOf = (n: number) => encodeCursor([n]);

  it("one row more than asked means another page, and it is not returned", () => {
    const page = toPage([1, 2, 3, 4], 3, cursorOf);
    assert.deepEqual(page.items, [1, 2, 3]);
    assert.equal(page.hasNextPage, true);
    // Edges get their cursors from the caller's function: the page keeps that very function.
    assert.equal(page.cursorOf, cursorOf);
  });

  it("exactly the asked number of rows means no next page", () => {
    const page = toPage([1, 2, 3], 3, cursorOf);
    assert.deepEqual(page.items, [1, 2, 3]);
    assert.equal(page.hasNextPage, false);
  });

  it("fewer rows: no next page", () => {
    const page = toPage([1, 2], 3, cursorOf);
    assert.deepEqual(page.items, [1, 2]);
    assert.equal(page.hasNextPage, false);
    assert.deepEqual(toPage([], 3, cursorOf).items, []);
    assert.equal(toPage([], 3, cursorOf).hasNextPage, false);
  });
});
