import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SendWindow } from "../../src/fleet/send-window";

describe("fleet send window", () => {
  it("grows by about one per window of fast sends, up to the maximum", () => {
    const window = new SendWindow(2, 8);
    assert.equal(window.size, 2);
    for (let i = 0; i < 5; i++) window.record(5);
    assert.ok(window.size >= 3 && window.size <= 4, `size ${window.size}`);
    for (let i = 0; i < 200; i++) window.record(5);
    assert.equal(window.size, 8);
  });

  it("halves on a send much slower than the fastest, never below the minimum", () => {
    const window = new SendWindow(2, 32);
    for (let i = 0; i < 2000; i++) window.record(5);
    assert.equal(window.size, 32);
    window.record(200);
    assert.equal(window.size, 16);
    for (let i = 0; i < 10; i++) window.record(200);
    assert.equal(window.size, 2);
  });

  it("a send within the margin of the fastest is not slow", () => {
    const window = new SendWindow(1, 4);
    window.record(5);
    const before = window.size;
    window.record(24); // 5 × 3 + 10 = 25
    assert.ok(window.size >= before);
  });
});

describe("fleet send window: the gap between starts", () => {
  it("opens once the window is at its minimum and sends stay slow, doubling up to 250 ms", () => {
    const window = new SendWindow(2, 32);
    window.record(5);
    window.record(200);
    assert.equal(window.size, 2);
    assert.equal(window.gapMs, 0, "the window halved to its minimum first");
    window.record(200);
    assert.equal(window.gapMs, 5, "at the minimum already: the first pause");
    window.record(200);
    assert.equal(window.gapMs, 10);
    for (let i = 0; i < 20; i++) window.record(200);
    assert.equal(window.gapMs, 250);
  });

  it("eases off while sends are fast, and only then does the window grow again", () => {
    const window = new SendWindow(2, 32);
    window.record(5);
    for (let i = 0; i < 4; i++) window.record(200);
    assert.equal(window.gapMs, 20);
    window.record(5);
    assert.equal(window.gapMs, 18);
    assert.equal(window.size, 2);
    for (let i = 0; i < 30 && window.gapMs > 0; i++) window.record(5);
    assert.equal(window.gapMs, 0);
    for (let i = 0; i < 10; i++) window.record(5);
    assert.ok(window.size > 2, `size ${window.size}`);
  });
});
