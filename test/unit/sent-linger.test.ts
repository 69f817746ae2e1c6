import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdaptiveLinger } from "../../src/commands/sent-linger";

describe("SENT's adaptive linger", () => {
  it("starts at the minimum and stays there for devices answering within it", () => {
    const linger = new AdaptiveLinger(25, 250);
    assert.equal(linger.ms, 25);
    for (let i = 0; i < 200; i++) linger.observe(3);
    assert.equal(linger.ms, 25);
  });

  it("covers twice the 99th percentile of recent answers, up to the maximum", () => {
    const linger = new AdaptiveLinger(25, 250, 100);
    // 99 answers at 40 ms, one at 1000 ms: the 99th percentile is 40.
    for (let i = 0; i < 100; i++) linger.observe(i === 50 ? 1000 : 40);
    assert.equal(linger.ms, 80);
    for (let i = 0; i < 5; i++) linger.observe(1000);
    for (let i = 0; i < 11; i++) linger.observe(40);
    assert.equal(linger.ms, 250, "a few slow answers in the window: their time (capped) is waited for");
    for (let i = 0; i < 100; i++) linger.observe(400);
    assert.equal(linger.ms, 250);
  });

  it("comes down again once answers are quick: only the recent window counts", () => {
    const linger = new AdaptiveLinger(25, 250, 64);
    for (let i = 0; i < 64; i++) linger.observe(100);
    assert.equal(linger.ms, 200);
    for (let i = 0; i < 64; i++) linger.observe(5);
    assert.equal(linger.ms, 25);
  });
});
