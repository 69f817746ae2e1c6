import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DueQueue } from "../../src/common/due-queue";
import { systemClock } from "../../src/clock";

// The queue's timer does not hold the process open (unref); the tests do.
let keepAlive: NodeJS.Timeout;
before(() => (keepAlive = setInterval(() => {}, 1_000)));
after(() => clearInterval(keepAlive));

describe("DueQueue", () => {
  it("runs due ids, at most perKey at once per key, while other keys go on", async () => {
    const started: string[] = [];
    const release = new Map<string, () => void>();
    let resolveOther!: () => void;
    const otherDone = new Promise<void>((resolve) => (resolveOther = resolve));
    const queue = new DueQueue(
      async (id) => {
        started.push(id);
        if (id.startsWith("slow")) await new Promise<void>((resolve) => release.set(id, resolve));
        else resolveOther();
        return null;
      },
      { perKey: 2, total: 10, capacity: 100 },
      systemClock,
      1_000,
      () => {},
    );
    const now = new Date();
    for (const id of ["slow1", "slow2", "slow3"]) queue.schedule(id, "slow", now);
    queue.schedule("other", "fast", now);
    await otherDone;
    assert.deepEqual(started.sort(), ["other", "slow1", "slow2"]);
    release.get("slow1")!();
    await new Promise<void>((resolve) => {
      const check = () => (started.includes("slow3") ? resolve() : setImmediate(check));
      check();
    });
    release.get("slow2")!();
    release.get("slow3")!();
    await queue.stop();
    assert.equal(queue.size, 0);
  });

  it("runs an id again when its run asks, and refuses beyond capacity", async () => {
    let runs = 0;
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const queue = new DueQueue(
      async () => {
        runs++;
        if (runs < 3) return new Date(Date.now() + 5);
        done();
        return null;
      },
      { perKey: 1, total: 1, capacity: 1 },
      systemClock,
      1_000,
      () => {},
    );
    assert.equal(queue.schedule("a", "k", new Date()), true);
    assert.equal(queue.schedule("b", "k", new Date()), false);
    await finished;
    await queue.stop();
    assert.equal(runs, 3);
  });
});
