import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ThrottledLog } from "../../src/common/throttled-log";
import type { Logger } from "../../src/logger";

describe("throttled warn lines", () => {
  it("writes the first of a kind, then one per interval carrying how many were left out", () => {
    const lines: Array<{ fields: Record<string, unknown>; message: string }> = [];
    const log = { warn: (fields: Record<string, unknown>, message: string) => lines.push({ fields, message }) } as unknown as Logger;
    let now = 0;
    const throttled = new ThrottledLog(log, 1000, () => now);
    for (let i = 0; i < 5; i++) throttled.warn("connect:unregistered", { i }, "refused");
    throttled.warn("publish:not_allowed", { i: 9 }, "other kind");
    now = 1000;
    throttled.warn("connect:unregistered", { i: 5 }, "refused");
    assert.deepEqual(lines, [
      { fields: { i: 0 }, message: "refused" },
      { fields: { i: 9 }, message: "other kind" },
      { fields: { i: 5, suppressedSinceLast: 4 }, message: "refused" },
    ]);
  });
});
