import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TtlCache } from "../../src/common/ttl-cache";

function manualClock(start = 0) {
  let now = start;
  return { now: () => new Date(now), advance: (ms: number) => (now += ms) };
}

describe("TtlCache", () => {
  it("loads once per key while fresh, and again after the TTL", async () => {
    const clock = manualClock();
    const cache = new TtlCache<string, number>(1000, clock);
    let loads = 0;
    const load = async () => ++loads;
    assert.equal(await cache.get("a", load), 1);
    clock.advance(999);
    assert.equal(await cache.get("a", load), 1);
    clock.advance(1);
    assert.equal(await cache.get("a", load), 2);
  });

  it("shares one load between concurrent readers", async () => {
    const cache = new TtlCache<string, number>(1000, manualClock());
    let loads = 0;
    const values = await Promise.all(Array.from({ length: 10 }, () => cache.get("a", async () => ++loads)));
    assert.deepEqual(new Set(values), new Set([1]));
    assert.equal(loads, 1);
  });

  it("loads again after delete, and does not keep a failed load", async () => {
    const cache = new TtlCache<string, number>(1000, manualClock());
    let loads = 0;
    await cache.get("a", async () => ++loads);
    cache.delete("a");
    assert.equal(await cache.get("a", async () => ++loads), 2);

    await assert.rejects(cache.get("b", async () => Promise.reject(new Error("store down"))));
    assert.equal(await cache.get("b", async () => 7), 7);
  });

  it("drops the oldest entry beyond its capacity", async () => {
    const cache = new TtlCache<string, string>(1000, manualClock(), 2);
    for (const key of ["a", "b", "c"]) await cache.get(key, async () => `${key}1`);
    assert.equal(await cache.get("c", async () => "c2"), "c1");
    assert.equal(await cache.get("a", async () => "a2"), "a2");
  });
});
