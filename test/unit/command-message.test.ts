import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Command } from "../../src/commands/command";
import { deviceReplySchema, encodeCommandMessage } from "../../src/commands/command-message";

const CREATED = new Date("2030-01-01T10:00:00.000Z");
const EXPIRES = new Date("2030-01-01T11:00:00.000Z");

function command(overrides: Partial<Command> = {}): Command {
  return {
    id: "cmd-1",
    v: 3,
    tenant: "acme",
    site: "s1",
    deviceId: "valve-1",
    type: "valve.open",
    payload: { seconds: 30 },
    status: "QUEUED",
    source: "OPERATOR",
    issuedBy: "user-1",
    attempt: 2,
    timeoutSeconds: 30,
    createdAt: CREATED,
    updatedAt: new Date("2030-01-01T10:00:05.000Z"),
    history: [],
    claim: { owner: "replica-1", until: new Date("2030-01-01T10:01:00.000Z") },
    inputHash: "secret-hash",
    idempotencyKey: "idem-1",
    ...overrides,
  };
}

describe("encodeCommandMessage (CONTRACT §5)", () => {
  it("is exactly {id, type, payload, attempt, issuedAt, expiresAt}, in that order", () => {
    const text = encodeCommandMessage(command({ expiresAt: EXPIRES }));
    assert.equal(
      text,
      '{"id":"cmd-1","type":"valve.open","payload":{"seconds":30},"attempt":2,"issuedAt":"2030-01-01T10:00:00.000Z","expiresAt":"2030-01-01T11:00:00.000Z"}',
    );
  });

  it("expiresAt is null when the command never expires", () => {
    const message = JSON.parse(encodeCommandMessage(command()));
    assert.deepEqual(Object.keys(message), ["id", "type", "payload", "attempt", "issuedAt", "expiresAt"]);
    assert.equal(message.expiresAt, null);
  });

  it("leaks no internal field (tenant, claim, hash, history, status …)", () => {
    const message = JSON.parse(encodeCommandMessage(command({ expiresAt: EXPIRES, deadline: EXPIRES, result: { a: 1 } })));
    for (const key of ["tenant", "site", "claim", "inputHash", "idempotencyKey", "history", "status", "issuedBy", "deadline", "result"]) {
      assert.ok(!(key in message), key);
    }
  });

  it("carries the traceparent it is given (§6.5) last, and none otherwise; never the stored one", () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const stored = command({ traceparent: "00-11111111111111111111111111111111-2222222222222222-01" });
    assert.deepEqual(Object.keys(JSON.parse(encodeCommandMessage(stored, traceparent))), ["id", "type", "payload", "attempt", "issuedAt", "expiresAt", "traceparent"]);
    assert.equal(JSON.parse(encodeCommandMessage(stored, traceparent)).traceparent, traceparent);
    assert.equal("traceparent" in JSON.parse(encodeCommandMessage(stored)), false);
  });

  it("issuedAt is the creation time, not the update time", () => {
    assert.equal(JSON.parse(encodeCommandMessage(command())).issuedAt, CREATED.toISOString());
  });
});

describe("deviceReplySchema: accepts the three reply shapes of CONTRACT §5", () => {
  const accepted: Array<[string, unknown]> = [
    ["DELIVERED", { id: "cmd-1", status: "DELIVERED" }],
    ["DELIVERED with attempt", { id: "cmd-1", status: "DELIVERED", attempt: 1 }],
    ["SUCCEEDED with result", { id: "cmd-1", status: "SUCCEEDED", result: { open: true, until: "2030-01-01T10:00:30Z" } }],
    ["SUCCEEDED with empty result and attempt", { id: "cmd-1", status: "SUCCEEDED", result: {}, attempt: 3 }],
    ["FAILED with code and message", { id: "cmd-1", status: "FAILED", error: { code: "EXPIRED", message: "too late" } }],
    ["FAILED with code only and attempt", { id: "cmd-1", status: "FAILED", error: { code: "JAMMED" }, attempt: 2 }],
  ];
  for (const [label, reply] of accepted) {
    it(label, () => {
      const parsed = deviceReplySchema.safeParse(reply);
      assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
      assert.equal(parsed.data.id, "cmd-1");
      assert.equal(parsed.data.status, (reply as { status: string }).status);
    });
  }

  it("keeps an echoed traceparent, and drops one that is not a string instead of refusing the reply", () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const parsed = deviceReplySchema.parse({ id: "cmd-1", status: "DELIVERED", traceparent });
    assert.equal(parsed.traceparent, traceparent);
    const junk = deviceReplySchema.safeParse({ id: "cmd-1", status: "SUCCEEDED", result: {}, traceparent: { x: 1 } });
    assert.equal(junk.success, true);
    assert.equal(junk.data?.traceparent, undefined);
  });

  it("keeps the result and the error it parsed", () => {
    const ok = deviceReplySchema.parse({ id: "c", status: "SUCCEEDED", result: { celsius: 21 } });
    assert.deepEqual(ok.status === "SUCCEEDED" ? ok.result : undefined, { celsius: 21 });
    const failed = deviceReplySchema.parse({ id: "c", status: "FAILED", error: { code: "E", message: "m" } });
    assert.deepEqual(failed.status === "FAILED" ? failed.error : undefined, { code: "E", message: "m" });
  });
});

describe("deviceReplySchema: rejects malformed replies", () => {
  const rejected: Array<[string, unknown]> = [
    ["unknown status", { id: "cmd-1", status: "DONE" }],
    ["lower-case status", { id: "cmd-1", status: "delivered" }],
    ["status QUEUED (not a reply status)", { id: "cmd-1", status: "QUEUED" }],
    ["FAILED without error", { id: "cmd-1", status: "FAILED" }],
    ["FAILED with error without code", { id: "cmd-1", status: "FAILED", error: { message: "x" } }],
    ["FAILED with empty code", { id: "cmd-1", status: "FAILED", error: { code: "" } }],
    ["FAILED with a string error", { id: "cmd-1", status: "FAILED", error: "boom" }],
    ["SUCCEEDED with a number result", { id: "cmd-1", status: "SUCCEEDED", result: 42 }],
    ["SUCCEEDED with a string result", { id: "cmd-1", status: "SUCCEEDED", result: "ok" }],
    ["SUCCEEDED with an array result", { id: "cmd-1", status: "SUCCEEDED", result: [1, 2] }],
    ["SUCCEEDED with a null result", { id: "cmd-1", status: "SUCCEEDED", result: null }],
    ["missing id", { status: "DELIVERED" }],
    ["empty id", { id: "", status: "DELIVERED" }],
    ["numeric id", { id: 1, status: "DELIVERED" }],
    ["id longer than 64", { id: "x".repeat(65), status: "DELIVERED" }],
    ["missing status", { id: "cmd-1" }],
    ["attempt 0", { id: "cmd-1", status: "DELIVERED", attempt: 0 }],
    ["negative attempt", { id: "cmd-1", status: "SUCCEEDED", result: {}, attempt: -1 }],
    ["fractional attempt", { id: "cmd-1", status: "FAILED", error: { code: "E" }, attempt: 1.5 }],
    ["string attempt", { id: "cmd-1", status: "DELIVERED", attempt: "1" }],
    ["not an object", "DELIVERED"],
    ["null", null],
    ["an array", [{ id: "cmd-1", status: "DELIVERED" }]],
    ["SUCCEEDED with a result nested 8000 deep", { id: "cmd-1", status: "SUCCEEDED", result: nested(8000) }],
    ["SUCCEEDED with a result nested 33 deep", { id: "cmd-1", status: "SUCCEEDED", result: nested(33) }],
  ];
  for (const [label, reply] of rejected) {
    it(label, () => assert.equal(deviceReplySchema.safeParse(reply).success, false));
  }
  it("a result 32 levels deep is accepted", () => assert.equal(deviceReplySchema.safeParse({ id: "cmd-1", status: "SUCCEEDED", result: nested(32) }).success, true));
});

/** `{ a: { a: … 1 } }` with `levels` objects, built without recursion. */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { a: 1 };
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}
