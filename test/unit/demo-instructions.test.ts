import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { demoInstructions } from "../../src/demo/demo";

describe("demo instructions", () => {
  it("print one console link per demo role beside the tokens, each signing in with that role's token", () => {
    const tokens = { admin: "tok.admin.x", operator: "tok.operator.y", viewer: "tok.viewer.z" };
    const text = demoInstructions(4123, tokens);
    for (const [role, token] of Object.entries(tokens)) {
      assert.match(text, new RegExp(`${role}:\\s+http://localhost:4123/console#token=${token.replace(/\./g, "\\.")}\\n`));
    }
    assert.match(text, /GraphiQL\): http:\/\/localhost:4123\/graphql/);
  });
});
