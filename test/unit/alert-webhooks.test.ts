import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nextAttemptAt } from "../../src/alerts/webhooks/retry-policy";
import { signatureHeader, verifySignature } from "../../src/alerts/webhooks/signature";
import { RefusedWebhookUrl, WebhookUrlGuard, type ResolvedAddress } from "../../src/alerts/webhooks/url-guard";
import { loadConfig } from "../../src/config";

const resolvesTo = (table: Record<string, string[]>) => async (host: string): Promise<ResolvedAddress[]> =>
  (table[host] ?? []).map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));

async function refused(guard: WebhookUrlGuard, raw: string): Promise<string> {
  try {
    await guard.check(guard.parse(raw));
  } catch (error) {
    assert.ok(error instanceof RefusedWebhookUrl, String(error));
    return error.message;
  }
  assert.fail(`${raw} was allowed`);
}

describe("webhook URL guard", () => {
  const dns = resolvesTo({
    "hooks.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "rebound.example.com": ["93.184.216.34", "10.1.2.3"],
    "metadata.example.com": ["169.254.169.254"],
    "mapped.example.com": ["::ffff:192.168.1.1"],
    "internal.corp": ["10.0.0.7"],
  });
  const guard = new WebhookUrlGuard(new Set(["internal.corp"]), dns);

  it("allows a host whose every address is public, and returns those addresses to connect to", async () => {
    const addresses = await guard.check(guard.parse("https://hooks.example.com/alerts"));
    assert.deepEqual(addresses.map((a) => a.address), ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]);
  });

  for (const url of [
    "http://127.0.0.1/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.0.1/",
    "http://169.254.169.254/",
    "http://100.100.100.200/",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::a00:1]/",
    "http://[2002:a00:1::]/",
    "http://224.0.0.1/",
  ]) {
    it(`refuses ${url}`, async () => assert.match(await refused(guard, url), /ALERT_WEBHOOK_ALLOW_HOSTS/));
  }

  it("refuses a name with any non-public address, a metadata name, an IPv4-mapped answer, a name that does not resolve", async () => {
    assert.match(await refused(guard, "https://rebound.example.com/"), /10\.1\.2\.3, a private address/);
    assert.match(await refused(guard, "https://metadata.example.com/"), /linkLocal/);
    assert.match(await refused(guard, "https://mapped.example.com/"), /private/);
    assert.match(await refused(guard, "https://nowhere.example.com/"), /does not resolve/);
  });

  it("allows listed hosts whatever they resolve to", async () => {
    assert.deepEqual(await guard.check(guard.parse("http://INTERNAL.corp./x")), [{ address: "10.0.0.7", family: 4 }]);
    const loopback = new WebhookUrlGuard(new Set(["127.0.0.1", "::1"]), dns);
    await loopback.check(loopback.parse("http://127.0.0.1:9/"));
    await loopback.check(loopback.parse("http://[::1]:9/"));
  });

  it("refuses what is not an http(s) URL without credentials", async () => {
    assert.match(await refused(guard, "ftp://hooks.example.com/"), /https:\/\/ or http:\/\//);
    assert.match(await refused(guard, "https://user:pw@hooks.example.com/"), /credentials/);
    assert.match(await refused(guard, "hooks.example.com/alerts"), /not a valid absolute URL/);
    assert.match(await refused(guard, `https://hooks.example.com/${"a".repeat(2100)}`), /at most 2048/);
  });
});

describe("webhook retry policy", () => {
  const policy = { firstRetryMs: 10_000, retryWindowMs: 24 * 3600_000 };
  const created = new Date("2026-01-01T00:00:00Z");

  it("backs off growing, with jitter in the upper half, capped at an hour", () => {
    const delay = (attempt: number, random: number) => nextAttemptAt(policy, attempt, created, created, () => random)!.getTime() - created.getTime();
    assert.equal(delay(1, 0), 5_000);
    assert.equal(delay(1, 1), 10_000);
    assert.equal(delay(2, 0), 10_000);
    assert.equal(delay(3, 1), 40_000);
    assert.equal(delay(20, 1), 3600_000);
    assert.ok(delay(2, 0.5) > delay(1, 0.5));
  });

  it("gives up once the window since the alert is over, making the last attempt at its end", () => {
    const late = new Date(created.getTime() + policy.retryWindowMs - 1_000);
    assert.equal(nextAttemptAt(policy, 30, created, late, () => 1)!.getTime(), created.getTime() + policy.retryWindowMs);
    assert.equal(nextAttemptAt(policy, 31, created, new Date(created.getTime() + policy.retryWindowMs)), null);
  });
});

describe("webhook signature", () => {
  it("is t=<unix>,v1=<hex HMAC-SHA256(secret, t.body)> and verifies only with the same secret and body", () => {
    const header = signatureHeader("s3cret", '{"id":"a"}', 1700000000);
    assert.match(header, /^t=1700000000,v1=[0-9a-f]{64}$/);
    assert.ok(verifySignature("s3cret", '{"id":"a"}', header));
    assert.ok(!verifySignature("other", '{"id":"a"}', header));
    assert.ok(!verifySignature("s3cret", '{"id":"b"}', header));
    assert.ok(!verifySignature("s3cret", '{"id":"a"}', header.replace("t=1700000000", "t=1700000001")));
  });
});

describe("config: ALERT_WEBHOOK_*", () => {
  it("reads the allow-list as normalized hosts, defaults to none", () => {
    assert.deepEqual([...loadConfig({}).alertWebhookAllowHosts], []);
    assert.deepEqual([...loadConfig({ ALERT_WEBHOOK_ALLOW_HOSTS: " Hooks.Internal , [::1],127.0.0.1" }).alertWebhookAllowHosts], ["hooks.internal", "::1", "127.0.0.1"]);
    assert.equal(loadConfig({}).alertWebhookRetryWindowMs, 86_400_000);
  });
  it("refuses a malformed allow-list naming the variable", () => {
    assert.throws(() => loadConfig({ ALERT_WEBHOOK_ALLOW_HOSTS: "http://x/" }), /ALERT_WEBHOOK_ALLOW_HOSTS/);
    assert.throws(() => loadConfig({ ALERT_WEBHOOK_FIRST_RETRY_MS: "1" }), /ALERT_WEBHOOK_FIRST_RETRY_MS/);
  });
});
