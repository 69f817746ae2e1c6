import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defineAbilityFor } from "../../src/authz/ability";
import type { Principal } from "../../src/authz/principal";
import { allowedActions, type ActionSubject, type CommandAction } from "../../src/commands/allowed-actions";
import { COMMAND_STATUSES, type CommandStatus } from "../../src/commands/command";

const operatorS1: Principal = { kind: "user", id: "op", tenant: "acme", roles: ["operator"], sites: ["s1"] };
const admin: Principal = { kind: "user", id: "adm", tenant: "acme", roles: ["admin"] };
const viewer: Principal = { kind: "user", id: "view", tenant: "acme", roles: ["viewer"] };
const apiKey: Principal = { kind: "apiKey", id: "key", tenant: "acme", commandTypes: ["valve.open"] };

const command = (status: CommandStatus, over: Partial<ActionSubject> = {}): ActionSubject => ({
  status,
  tenant: "acme",
  site: "s1",
  deviceId: "d1",
  type: "valve.open",
  issuedBy: "someone",
  ...over,
});

/** The state machine's side of the rule (CONTRACT §4): what an allowed caller is offered in each status. */
const BY_STATUS: Record<CommandStatus, CommandAction[]> = {
  QUEUED: ["CANCEL"],
  SENT: [],
  DELIVERED: [],
  SUCCEEDED: [],
  FAILED: ["RETRY", "ESCALATE"],
  TIMED_OUT: ["RETRY", "ESCALATE"],
  EXPIRED: ["RETRY", "ESCALATE"],
  CANCELED: [],
};

describe("allowedActions: the command's state × the caller's policy", () => {
  for (const status of COMMAND_STATUSES) {
    it(`${status}: an operator of the site and an admin get ${BY_STATUS[status].join(", ") || "nothing"}`, () => {
      assert.deepEqual(allowedActions(defineAbilityFor(operatorS1), command(status)), BY_STATUS[status]);
      assert.deepEqual(allowedActions(defineAbilityFor(admin), command(status)), BY_STATUS[status]);
    });
  }

  it("a viewer and an API key get nothing in any status", () => {
    for (const status of COMMAND_STATUSES) {
      assert.deepEqual(allowedActions(defineAbilityFor(viewer), command(status)), []);
      assert.deepEqual(allowedActions(defineAbilityFor(apiKey), command(status)), []);
    }
  });

  it("an operator gets nothing on another site's or another tenant's command", () => {
    assert.deepEqual(allowedActions(defineAbilityFor(operatorS1), command("TIMED_OUT", { site: "s2" })), []);
    assert.deepEqual(allowedActions(defineAbilityFor(admin), command("TIMED_OUT", { tenant: "globex" })), []);
  });
});
