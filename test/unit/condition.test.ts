import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileCondition, CONDITION_LIMITS, validateCondition } from "../../src/automation/condition";
import { GatewayError } from "../../src/errors";

/** The BAD_USER_INPUT details validateCondition throws, or undefined when the condition is accepted. */
function refusal(when: unknown): { field?: unknown; pointer?: unknown; message: string } | undefined {
  try {
    validateCondition(when);
    return undefined;
  } catch (error) {
    assert.ok(error instanceof GatewayError, String(error));
    assert.equal(error.code, "BAD_USER_INPUT");
    return { ...error.details, message: error.message };
  }
}

const matches = (when: unknown, telemetry: Record<string, unknown>) => compileCondition(when)(telemetry);

describe("rule conditions: the allow-list", () => {
  it("the limits are the documented ones (README, CONTRACT)", () => {
    assert.deepEqual({ ...CONDITION_LIMITS }, { maxBytes: 4096, maxDepth: 8, maxArrayLength: 100, maxRegexLength: 200, maxFieldLength: 200 });
  });
  it("accepts every allowed operator", () => {
    const accepted: unknown[] = [
      {},
      { temperature: 30 },
      { status: "ok", online: true, error: null },
      { temperature: { $eq: 30 } },
      { temperature: { $ne: 30 } },
      { temperature: { $gt: 30, $lte: 50 } },
      { temperature: { $gte: 30 }, humidity: { $lt: 80 } },
      { firmware: { $gt: "1.2" } },
      { alarm: { $exists: true } },
      { status: { $in: ["fault", "overheat"] } },
      { status: { $nin: [1, 2, true] } },
      { name: { $regex: "^pump-[0-9]+$", $options: "ms" } },
      { temperature: { $not: { $gt: 30 } } },
      { $and: [{ a: 1 }, { b: 2 }] },
      { $or: [{ a: 1 }, { $nor: [{ b: 2 }] }] },
      { "sensors.inlet.pressure": { $gt: 2.5 } },
    ];
    for (const when of accepted) assert.equal(refusal(when), undefined, JSON.stringify(when));
  });

  it("refuses code, aggregation expressions and unknown operators, pointing at them", () => {
    const refused: Array<[unknown, string]> = [
      [{ $where: "this.temperature > 30" }, "/$where"],
      [{ $expr: { $gt: ["$temperature", 30] } }, "/$expr"],
      [{ temperature: { $function: { body: "return true", args: [], lang: "js" } } }, "/temperature/$function"],
      [{ $comment: "hi" }, "/$comment"],
      [{ temperature: { $near: [0, 0] } }, "/temperature/$near"],
      [{ tags: { $elemMatch: { $eq: 1 } } }, "/tags/$elemMatch"],
      [{ tags: { $size: 2 } }, "/tags/$size"],
      [{ n: { $mod: [2, 0] } }, "/n/$mod"],
      [{ $and: [{ a: 1 }, { b: { $jsonSchema: {} } }] }, "/$and/1/b/$jsonSchema"],
      [{ a: { $not: { $where: "1" } } }, "/a/$not/$where"],
    ];
    for (const [when, pointer] of refused) {
      const details = refusal(when);
      assert.ok(details, `${JSON.stringify(when)} is refused`);
      assert.equal(details.field, "when");
      assert.equal(details.pointer, pointer, JSON.stringify(when));
      assert.match(details.message, /is not an allowed operator/);
    }
  });

  it("refuses values an operator cannot take", () => {
    const refused: Array<[unknown, string]> = [
      [null, ""],
      [[{ a: 1 }], ""],
      ["temperature > 30", ""],
      [{ temperature: { $gt: [30] } }, "/temperature/$gt"],
      [{ temperature: { $gt: null } }, "/temperature/$gt"],
      [{ temperature: { $eq: { value: 1 } } }, "/temperature/$eq"],
      [{ temperature: [1, 2] }, "/temperature"],
      [{ sensor: { inlet: 2 } }, "/sensor"],
      [{ sensor: {} }, "/sensor"],
      [{ sensor: { $gt: 1, inlet: 2 } }, "/sensor"],
      [{ alarm: { $exists: 1 } }, "/alarm/$exists"],
      [{ status: { $in: "fault" } }, "/status/$in"],
      [{ status: { $in: [null] } }, "/status/$in/0"],
      [{ status: { $nin: [{}] } }, "/status/$nin/0"],
      [{ $or: [] }, "/$or"],
      [{ $or: { a: 1 } }, "/$or"],
      [{ $and: [1] }, "/$and/0"],
      [{ a: { $not: 3 } }, "/a/$not"],
      [{ a: { $not: {} } }, "/a/$not"],
      [{ a: { $options: "i" } }, "/a/$options"],
      [{ a: { $regex: "x", $options: "g" } }, "/a/$options"],
      [{ a: { $regex: "x", $options: "i" } }, "/a/$options"],
      [{ a: { $regex: 5 } }, "/a/$regex"],
      [{ a: { $regex: "(" } }, "/a/$regex"],
      [{ temperature: { $gt: Number.NaN } }, "/temperature/$gt"],
    ];
    for (const [when, pointer] of refused) {
      const details = refusal(when);
      assert.ok(details, `${JSON.stringify(when)} is refused`);
      assert.equal(details.field, "when");
      assert.equal(details.pointer, pointer, JSON.stringify(when));
    }
  });

  it("refuses field paths that are empty, too long or reach into Object.prototype", () => {
    const names = ["a..b", ".a", "__proto__", "constructor", "a.toString", "x".repeat(CONDITION_LIMITS.maxFieldLength + 1)];
    for (const name of names) {
      const details = refusal(JSON.parse(JSON.stringify({ [name]: 1 })));
      assert.ok(details, `${name} is refused`);
      assert.equal(details.pointer, `/${name}`);
    }
    assert.equal(refusal({ "a/b~c": 1 })?.pointer, undefined, "any other name is fine");
    assert.equal(refusal({ "a/b~c": { $foo: 1 } })?.pointer, "/a~1b~0c/$foo", "pointer segments are escaped (RFC 6901)");
  });

  it("bounds regular expressions: length, and only what runs in linear time", () => {
    assert.equal(refusal({ a: { $regex: "a".repeat(CONDITION_LIMITS.maxRegexLength) } }), undefined);
    assert.equal(refusal({ a: { $regex: "a".repeat(CONDITION_LIMITS.maxRegexLength + 1) } })?.pointer, "/a/$regex");
    for (const backtracking of ["(a)\\1", "(?=a)a", "(?<!x)y"]) {
      assert.match(refusal({ a: { $regex: backtracking } })?.message ?? "accepted", /linear time/, backtracking);
    }
  });

  it("runs patterns that would backtrack exponentially in linear time", () => {
    // On a backtracking engine each of these would run for hours on this string.
    const telemetry = { a: `${"a".repeat(50_000)}b` };
    for (const evil of ["(a+)+$", "(a|aa)+$", "^(a*)*$", ".*a.*a.*a.*c"]) assert.equal(matches({ a: { $regex: evil } }, telemetry), false, evil);
  });

  it("bounds the condition's size, depth and arrays", () => {
    let deep: Record<string, unknown> = { a: 1 };
    for (let i = 0; i < CONDITION_LIMITS.maxDepth; i++) deep = { $and: [deep] };
    assert.match(refusal(deep)?.message ?? "accepted", /nested more than/);

    let notDeep: Record<string, unknown> = { a: 1 };
    for (let i = 0; i < CONDITION_LIMITS.maxDepth - 2; i++) notDeep = { $and: [notDeep] };
    assert.equal(refusal(notDeep), undefined);

    assert.equal(refusal({ a: { $not: { $not: { $not: { $not: { $not: { $not: { $not: { $gt: 1 } } } } } } } } })?.field, "when");
    assert.equal(refusal({ a: { $in: Array.from({ length: CONDITION_LIMITS.maxArrayLength + 1 }, (_, i) => i) } })?.pointer, "/a/$in");
    const big = Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`field${i}`, i]));
    assert.match(refusal(big)?.message ?? "accepted", /larger than/);
  });
});

describe("rule conditions: matching telemetry as MongoDB does", () => {
  it("compares numbers and strings within their own type only", () => {
    assert.equal(matches({ t: { $gt: 30 } }, { t: 31 }), true);
    assert.equal(matches({ t: { $gt: 30 } }, { t: 30 }), false);
    assert.equal(matches({ t: { $gt: 30 } }, { t: "40" }), false);
    assert.equal(matches({ t: { $lt: 30 } }, { t: "4" }), false);
    assert.equal(matches({ t: { $lte: 30 } }, { t: null }), false);
    assert.equal(matches({ t: { $gte: 30 } }, {}), false);
    assert.equal(matches({ v: { $gte: "1.10" } }, { v: "1.9" }), true, "strings compare as strings");
    assert.equal(matches({ t: 30 }, { t: "30" }), false);
    assert.equal(matches({ t: { $ne: 30 } }, { t: "30" }), true);
  });

  it("equality, null and existence", () => {
    assert.equal(matches({ status: "fault" }, { status: "fault" }), true);
    assert.equal(matches({ status: "fault" }, { status: "ok" }), false);
    assert.equal(matches({ error: null }, {}), true, "null matches a missing field");
    assert.equal(matches({ error: null }, { error: null }), true);
    assert.equal(matches({ error: { $ne: null } }, { error: "x" }), true);
    assert.equal(matches({ alarm: { $exists: true } }, { alarm: false }), true);
    assert.equal(matches({ alarm: { $exists: false } }, { other: 1 }), true);
    assert.equal(matches({ ok: true }, { ok: 1 }), false);
  });

  it("dotted paths reach nested objects and arrays", () => {
    assert.equal(matches({ "inlet.pressure": { $gt: 2 } }, { inlet: { pressure: 3 } }), true);
    assert.equal(matches({ "inlet.pressure": { $gt: 2 } }, { inlet: 3 }), false);
    assert.equal(matches({ "probes.t": { $gt: 30 } }, { probes: [{ t: 20 }, { t: 35 }] }), true);
    assert.equal(matches({ codes: 7 }, { codes: [3, 7] }), true);
    assert.equal(matches({ "probes.1": 5 }, { probes: [4, 5] }), true);
  });

  it("$in, $nin, $regex, $not and the logical operators", () => {
    assert.equal(matches({ s: { $in: ["a", "b"] } }, { s: "b" }), true);
    assert.equal(matches({ s: { $in: ["a", "b"] } }, { s: "c" }), false);
    assert.equal(matches({ s: { $nin: ["a", "b"] } }, { s: "c" }), true);
    assert.equal(matches({ s: { $nin: ["a"] } }, {}), true);
    assert.equal(matches({ name: { $regex: "^[Pp][Uu][Mm][Pp]" } }, { name: "PUMP-3" }), true);
    assert.equal(matches({ name: { $regex: "^pump" } }, { name: "PUMP-3" }), false);
    assert.equal(matches({ log: { $regex: "^fault$", $options: "m" } }, { log: "ok\nfault" }), true);
    assert.equal(matches({ name: { $not: { $regex: "^pump" } } }, { name: "valve" }), true);
    assert.equal(matches({ name: { $regex: "^1" } }, { name: 12 }), false, "a regex matches strings only");
    assert.equal(matches({ t: { $not: { $gt: 30 } } }, { t: 20 }), true);
    assert.equal(matches({ t: { $not: { $gt: 30 } } }, { t: 40 }), false);
    assert.equal(matches({ $and: [{ t: { $gt: 30 } }, { h: { $lt: 50 } }] }, { t: 31, h: 49 }), true);
    assert.equal(matches({ $and: [{ t: { $gt: 30 } }, { h: { $lt: 50 } }] }, { t: 31, h: 51 }), false);
    assert.equal(matches({ $or: [{ t: { $gt: 30 } }, { alarm: true }] }, { t: 0, alarm: true }), true);
    assert.equal(matches({ $nor: [{ t: { $gt: 30 } }, { alarm: true }] }, { t: 0, alarm: false }), true);
    assert.equal(matches({}, { anything: 1 }), true);
  });

  it("never reads inherited properties of the telemetry", () => {
    assert.equal(matches({ "t.length": 3 }, { t: "abc" }), false);
    assert.equal(matches({ "list.length": { $exists: true } }, { list: [1] }), false);
  });
});
