import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { emittedSdl, SCHEMA_FILE } from "../../resolvers/emit-schema";

test("schema/schema.graphql is what the resolvers emit (run `npm run schema:emit` after changing them)", async () => {
  assert.equal(readFileSync(SCHEMA_FILE, "utf8"), await emittedSdl());
});
