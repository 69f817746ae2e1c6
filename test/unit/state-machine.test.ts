import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { COMMAND_STATUSES, type CommandStatus } from "../../src/commands/command";
import {
  canTransition,
  ESCALATABLE,
  FINAL_STATUSES,
  REPLY_TRANSITIONS,
  targetOf,
  TRANSITIONS,
  type CommandTransition,
} from "../../src/commands/state-machine";

/**
 * The lifecycle of CONTRACT §4, written out by hand here (NOT derived from TRANSITIONS) so that a
 * change to the table in src/ that the contract does not allow makes a test fail.
 *
 * QUEUED ──publish──▶ SENT ──device──▶ DELIVERED ──device──▶ SUCCEEDED | FAILED
 *   │                   └── no final reply by deadline ──▶ TIMED_OUT ──late final reply──▶ SUCCEEDED | FAILED
 *   ├── not sent by expiresAt ──▶ EXPIRED
 *   └── cancelCommand ──▶ CANCELED
 * FAILED | TIMED_OUT | EXPIRED ──retryCommand──▶ QUEUED
 *
 * Plus: a device may answer before the broker's PUBACK reaches the gateway, so device replies are also
 * taken from QUEUED (the store checks the dispatch claim). Only FINAL replies are applied after TIMED_OUT.
 */
const ALL_STATUSES: readonly CommandStatus[] = ["QUEUED", "SENT", "DELIVERED", "SUCCEEDED", "FAILED", "TIMED_OUT", "EXPIRED", "CANCELED"];

const EXPECTED: Record<CommandTransition, { from: readonly CommandStatus[]; to: CommandStatus }> = {
  publishAcked: { from: ["QUEUED"], to: "SENT" },
  deviceDelivered: { from: ["QUEUED", "SENT"], to: "DELIVERED" },
  deviceSucceeded: { from: ["QUEUED", "SENT", "DELIVERED", "TIMED_OUT"], to: "SUCCEEDED" },
  deviceFailed: { from: ["QUEUED", "SENT", "DELIVERED", "TIMED_OUT"], to: "FAILED" },
  timeOut: { from: ["SENT", "DELIVERED"], to: "TIMED_OUT" },
  expire: { from: ["QUEUED"], to: "EXPIRED" },
  cancel: { from: ["QUEUED"], to: "CANCELED" },
  retry: { from: ["FAILED", "TIMED_OUT", "EXPIRED"], to: "QUEUED" },
};
const ALL_TRANSITIONS = Object.keys(EXPECTED) as CommandTransition[];

describe("state machine: the lists it is built on", () => {
  it("knows exactly the eight statuses of the contract", () => {
    assert.deepEqual([...COMMAND_STATUSES].sort(), [...ALL_STATUSES].sort());
  });

  it("defines exactly the transitions the contract describes (none missing, none extra)", () => {
    assert.deepEqual(Object.keys(TRANSITIONS).sort(), [...ALL_TRANSITIONS].sort());
  });
});

describe("state machine: every (status × transition) pair", () => {
  for (const transition of ALL_TRANSITIONS) {
    for (const from of ALL_STATUSES) {
      const allowed = EXPECTED[transition].from.includes(from);
      it(`${transition} from ${from}: ${allowed ? `allowed → ${EXPECTED[transition].to}` : "refused"}`, () => {
        assert.equal(canTransition(from, transition), allowed);
      });
    }
  }
});

describe("state machine: targetOf", () => {
  for (const transition of ALL_TRANSITIONS) {
    it(`${transition} leads to ${EXPECTED[transition].to}`, () => {
      assert.equal(targetOf(transition), EXPECTED[transition].to);
    });
  }

  it("no transition leads to the status it starts from (every transition is a real change)", () => {
    for (const transition of ALL_TRANSITIONS) {
      for (const from of ALL_STATUSES) {
        if (canTransition(from, transition)) assert.notEqual(targetOf(transition), from, `${transition} from ${from}`);
      }
    }
  });
});

describe("state machine: derived sets", () => {
  it("ESCALATABLE is FAILED, TIMED_OUT, EXPIRED (the statuses escalateCommand accepts)", () => {
    assert.deepEqual([...ESCALATABLE].sort(), ["EXPIRED", "FAILED", "TIMED_OUT"]);
  });

  it("FINAL_STATUSES is SUCCEEDED, FAILED, EXPIRED, CANCELED; TIMED_OUT is not final (a late reply is applied)", () => {
    assert.deepEqual([...FINAL_STATUSES].sort(), ["CANCELED", "EXPIRED", "FAILED", "SUCCEEDED"]);
    assert.ok(!FINAL_STATUSES.includes("TIMED_OUT"));
  });

  it("no device reply is applied to a command in a final status", () => {
    for (const status of FINAL_STATUSES) {
      for (const transition of Object.values(REPLY_TRANSITIONS)) {
        assert.equal(canTransition(status, transition), false, `${transition} from ${status}`);
      }
    }
  });

  it("a command that is not final accepts at least one final device reply", () => {
    for (const status of ALL_STATUSES.filter((s) => !FINAL_STATUSES.includes(s))) {
      assert.ok(canTransition(status, "deviceSucceeded") && canTransition(status, "deviceFailed"), status);
    }
  });

  it("REPLY_TRANSITIONS maps the three reply statuses of CONTRACT §5 to the device transitions", () => {
    assert.deepEqual({ ...REPLY_TRANSITIONS }, { DELIVERED: "deviceDelivered", SUCCEEDED: "deviceSucceeded", FAILED: "deviceFailed" });
    for (const [status, transition] of Object.entries(REPLY_TRANSITIONS)) assert.equal(targetOf(transition), status);
  });

  it("retry is possible exactly from the escalatable statuses", () => {
    for (const status of ALL_STATUSES) assert.equal(canTransition(status, "retry"), ESCALATABLE.includes(status), status);
  });
});
