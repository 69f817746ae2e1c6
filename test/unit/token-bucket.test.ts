import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Clock } from "../../src/clock";
import { TokenBuckets } from "../../src/common/token-bucket";

function manualClock(start = 1_000_000): Clock & { advance(ms: number): void } {
  let now = start;
  return { now: () => new Date(now), advance: (ms) => void (now += ms) };
}

describe("token buckets (mutation rate limit)", () => {
  it("allows a minute's worth at once, then refuses with the seconds until the next token", () => {
    const clock = manualClock();
    const buckets = new TokenBuckets(6, clock); // one token every 10 s
    for (let i = 0; i < 6; i++) assert.deepEqual(buckets.take("a"), { allowed: true });
    assert.deepEqual(buckets.take("a"), { allowed: false, retryAfterSeconds: 10 });
    clock.advance(4_000);
    assert.deepEqual(buckets.take("a"), { allowed: false, retryAfterSeconds: 6 });
    clock.advance(6_000);
    assert.deepEqual(buckets.take("a"), { allowed: true });
    assert.equal(buckets.take("a").allowed, false);
  });

  it("a smaller burst caps what may be spent at once without changing the rate", () => {
    const clock = manualClock();
    const buckets = new TokenBuckets(600, clock, 3); // 10 a second, 3 at once
    for (let i = 0; i < 3; i++) assert.equal(buckets.take("a").allowed, true);
    assert.equal(buckets.take("a").allowed, false);
    clock.advance(60_000);
    for (let i = 0; i < 3; i++) assert.equal(buckets.take("a").allowed, true);
    assert.equal(buckets.take("a").allowed, false);
    clock.advance(100);
    assert.equal(buckets.take("a").allowed, true);
  });

  it("keeps principals apart", () => {
    const buckets = new TokenBuckets(1, manualClock());
    assert.equal(buckets.take("a").allowed, true);
    assert.equal(buckets.take("a").allowed, false);
    assert.equal(buckets.take("b").allowed, true);
  });

  it("refills to the burst size and no further", () => {
    const clock = manualClock();
    const buckets = new TokenBuckets(2, clock);
    buckets.take("a");
    clock.advance(3_600_000);
    assert.equal(buckets.take("a").allowed, true);
    assert.equal(buckets.take("a").allowed, true);
    assert.equal(buckets.take("a").allowed, false);
  });

  it("says at least 1 s, never 0, and does not count refusals as spending", () => {
    const clock = manualClock();
    const buckets = new TokenBuckets(600, clock); // one token every 100 ms
    for (let i = 0; i < 600; i++) buckets.take("a");
    for (let i = 0; i < 5; i++) assert.deepEqual(buckets.take("a"), { allowed: false, retryAfterSeconds: 1 });
    clock.advance(100);
    assert.equal(buckets.take("a").allowed, true);
  });

  it("forgets idle principals without changing answers (memory stays bounded)", () => {
    const clock = manualClock();
    const buckets = new TokenBuckets(1, clock);
    assert.equal(buckets.take("busy").allowed, true);
    for (let i = 0; i < 10_001; i++) buckets.take(`p${i}`);
    assert.equal(buckets.take("busy").allowed, false, "a spent bucket is kept");
    clock.advance(60_000);
    for (let i = 0; i < 10_001; i++) buckets.take(`q${i}`);
    assert.ok((buckets as unknown as { buckets: Map<string, unknown> }).buckets.size <= 10_002);
  });
});
