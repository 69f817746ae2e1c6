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
