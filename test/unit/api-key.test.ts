import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { API_KEY_PREFIX, generateApiKey, hashApiKey, isWellFormedApiKey } from "../../src/apikeys/api-key";

describe("API key format", () => {
  it("is igk_ and 32 random bytes in base64url, different every time", () => {
    const keys = Array.from({ length: 100 }, generateApiKey);
    for (const key of keys) {
      assert.match(key, /^igk_[A-Za-z0-9_-]{43}$/);
      assert.equal(Buffer.from(key.slice(API_KEY_PREFIX.length), "base64url").length, 32);
      assert.ok(isWellFormedApiKey(key));
    }
    assert.equal(new Set(keys).size, keys.length);
  });

  it("is stored as its SHA-256, which does not contain the key", () => {
    const key = generateApiKey();
    const hash = hashApiKey(key);
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.equal(hashApiKey(key), hash);
    assert.notEqual(hashApiKey(`${key}x`), hash);
    assert.ok(!hash.includes(key.slice(4, 12)));
  });

  it("refuses anything else before a store lookup", () => {
    const key = generateApiKey();
    for (const bad of ["", "igk_", key.slice(0, -1), `${key}A`, key.replace("igk_", "igx_"), `igk_${"!".repeat(43)}`, `${key}\n`, '{"$ne":null}']) {
      assert.equal(isWellFormedApiKey(bad), false, JSON.stringify(bad));
    }
  });
});
