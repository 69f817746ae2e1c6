import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MongoNetworkError, MongoServerError } from "mongodb";
import { createLogger } from "../../src/logger";
import { retryWhileUnavailable } from "../../src/store/database";

const log = createLogger("silent");

describe("start-up steps retried while the store drops the connection", () => {
  it("runs the step again after a dropped connection, until it succeeds", async () => {
    let calls = 0;
    const result = await retryWhileUnavailable(
      async () => {
        if (++calls < 3) throw new MongoNetworkError("connection 2 to 127.0.0.1:27017 closed");
        return "indexes";
      },
      log,
      "test",
    );
    assert.equal(result, "indexes");
    assert.equal(calls, 3);
  });

  it("throws any other error at once, and the last dropped connection after the attempts", async () => {
    let calls = 0;
    await assert.rejects(
      retryWhileUnavailable(async () => {
        calls++;
        throw new MongoServerError({ message: "bad index spec", code: 67 });
      }, log, "test"),
      /bad index spec/,
    );
    assert.equal(calls, 1, "a refusal is not retried");
    calls = 0;
    await assert.rejects(
      retryWhileUnavailable(async () => {
        calls++;
        throw new MongoNetworkError("closed");
      }, log, "test", 2),
      MongoNetworkError,
    );
    assert.equal(calls, 2);
  });
});
