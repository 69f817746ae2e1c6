import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Alert } from "../../src/alerts/alert";
import { AlertDeliveryWorker } from "../../src/alerts/webhooks/delivery-worker";
import { verifySignature } from "../../src/alerts/webhooks/signature";
import { WebhookUrlGuard } from "../../src/alerts/webhooks/url-guard";
import { systemClock } from "../../src/clock";
import { createLogger } from "../../src/logger";
import { Metrics } from "../../src/observability/metrics";
import { AlertDeliveryRepository } from "../../src/store/alert-delivery-repository";
import { AlertRepository } from "../../src/store/alert-repository";
import { AlertWebhookRepository } from "../../src/store/alert-webhook-repository";
import { connectDatabase, type Database } from "../../src/store/database";
import {
  AlertsDocument,
  AlertWebhooksDocument,
  CreateAlertWebhookDocument,
  DeleteAlertWebhookDocument,
  EscalateCommandDocument,
  SendCommandDocument,
} from "../generated/graphql";
import { startTestGateway, waitForStatus, type TestGateway } from "../kit/gateway";
import type { GraphQLTestClient } from "../kit/graphql-client";
import { readMetric } from "../kit/metrics";
import { testStoreUri, uniqueName } from "../kit/store";
import { WebhookReceiver } from "../kit/webhook-receiver";

// Attempts wait up to a minute: a receiver the test holds stays held however slow the machine is.
const ALLOW_LOOPBACK = { ALERT_WEBHOOK_ALLOW_HOSTS: "127.0.0.1", ALERT_WEBHOOK_FIRST_RETRY_MS: "50", ALERT_WEBHOOK_TIMEOUT_MS: "60000" };

/** Sends a command the device fails: one FAILED alert. Returns the command id. */
async function failedCommand(client: GraphQLTestClient, deviceId: string): Promise<string> {
  const { sendCommand } = await client.data(SendCommandDocument, { input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 20 } } });
  await waitForStatus(client, sendCommand.id, "FAILED");
  return sendCommand.id;
}

async function createWebhook(client: GraphQLTestClient, url: string, kinds?: Array<"TIMED_OUT" | "FAILED" | "EXPIRED" | "ESCALATED">) {
  return (await client.data(CreateAlertWebhookDocument, { url, kinds })).createAlertWebhook;
}

/** Polls `check` (store reads) until it holds. */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Every request was signed with `secret` over its exact body. */
function assertSigned(receiver: WebhookReceiver, secret: string): void {
  for (const r of receiver.received) assert.ok(verifySignature(secret, r.body, r.signature), `signature of ${r.deliveryId}: ${r.signature}`);
}

describe("alert webhooks", () => {
  let a: TestGateway;
  const receivers: WebhookReceiver[] = [];
  const receiver = async (...args: Parameters<typeof WebhookReceiver.start>) => {
    const r = await WebhookReceiver.start(...args);
    receivers.push(r);
    return r;
  };
  before(async () => {
    a = await startTestGateway({ env: ALLOW_LOOPBACK });
  });
  after(async () => {
    for (const r of receivers) await r.close();
    await a?.stop();
  });

  it("delivers each alert once per subscribed webhook, signed, with the delivery id derived from alert and webhook", async () => {
    const admin = await a.as("admin");
    const all = await receiver();
    const failures = await receiver();
    const timeouts = await receiver();
    const allHook = await createWebhook(admin, all.url);
    const failuresHook = await createWebhook(admin, failures.url, ["FAILED", "ESCALATED"]);
    await createWebhook(admin, timeouts.url, ["TIMED_OUT"]);
    const device = await a.device(uniqueName("th-"), "thermostat", { failRate: 1 });

    const commandIds = [];
    for (let i = 0; i < 3; i++) commandIds.push(await failedCommand(admin, device.deviceId));
    await admin.data(EscalateCommandDocument, { id: commandIds[0]!, note: "call the installer" });
    const expected = 4; // three FAILED, one ESCALATED

    const deliveries = a.gateway.repositories.alertDeliveries.collection;
    await eventually(async () => (await deliveries.countDocuments({ tenant: a.tenant, status: "DELIVERED" })) === 2 * expected, "all deliveries DELIVERED");

    const { alerts } = await admin.data(AlertsDocument, {});
    const alertIds = alerts.edges.map((e) => e.node.id).sort();
    assert.equal(alertIds.length, expected);
    for (const [r, hook] of [
      [all, allHook],
      [failures, failuresHook],
    ] as const) {
      assert.deepEqual(r.received.map((d) => d.deliveryId).sort(), alertIds.map((id) => `${id}:${hook.id}`).sort(), "one request per alert");
      assertSigned(r, hook.secret);
      for (const d of r.received) {
        const body = JSON.parse(d.body) as { id: string; kind: string; commandId: string; tenant: string };
        assert.equal(`${body.id}:${hook.id}`, d.deliveryId);
        assert.equal(body.tenant, a.tenant);
        assert.ok(commandIds.includes(body.commandId));
      }
    }
    assert.equal(timeouts.received.length, 0, "no FAILED or ESCALATED alert reaches a TIMED_OUT-only webhook");

    const { alertWebhooks } = await admin.data(AlertWebhooksDocument, {});
    const listed = alertWebhooks.find((w) => w.id === allHook.id)!;
    assert.deepEqual(listed.kinds, ["TIMED_OUT", "FAILED", "EXPIRED", "ESCALATED"], "kinds null means all");
    assert.ok(listed.lastDeliveredAt && !listed.failing);
    assert.ok(!JSON.stringify(alertWebhooks).includes(allHook.secret), "the secret is not shown again");
    assert.equal(await readMetric(a.url, "gateway_alert_webhook_deliveries_total", { outcome: "delivered" }), 2 * expected);
    assert.equal(await readMetric(a.url, "gateway_alert_webhook_attempts_total", { outcome: "success" }), 2 * expected);
  });

  it("a receiver answering 500 three times, then 200, gets the same delivery id and body four times, each validly signed", async () => {
    const admin = await a.as("admin");
    const flaky = await receiver((d) => (d.seq <= 3 ? 500 : 200));
    const hook = await createWebhook(admin, flaky.url, ["FAILED"]);
    const device = await a.device(uniqueName("th-"), "thermostat", { failRate: 1 });
    await failedCommand(admin, device.deviceId);

    await flaky.waitFor(() => flaky.received.length >= 4, "four requests");
    const deliveryId = flaky.received[0]!.deliveryId;
    assert.match(deliveryId, new RegExp(`:${hook.id}$`));
    assert.deepEqual(flaky.received.map((d) => d.deliveryId), [deliveryId, deliveryId, deliveryId, deliveryId]);
    assert.equal(new Set(flaky.received.map((d) => d.body)).size, 1, "the same bytes every time");
    assertSigned(flaky, hook.secret);

    const deliveries = a.gateway.repositories.alertDeliveries.collection;
    await eventually(async () => (await deliveries.findOne({ _id: deliveryId }))?.status === "DELIVERED", "the delivery DELIVERED");
    const stored = (await deliveries.findOne({ _id: deliveryId }))!;
    assert.equal(stored.attempts, 4);
    assert.match(stored.lastError ?? "", /HTTP 500/);
    assert.equal(flaky.received.length, 4, "nothing after the 200");
  });

  it("a receiver that hangs delays neither the other webhooks nor sendCommand", async () => {
    const admin = await a.as("admin");
    const stuck = await receiver(() => "hang");
    const healthy = await receiver();
    await createWebhook(admin, stuck.url, ["FAILED"]);
    await createWebhook(admin, healthy.url, ["FAILED"]);
    const failing = await a.device(uniqueName("th-"), "thermostat", { failRate: 1 });
    const working = await a.device(uniqueName("th-"), "thermostat");

    for (let i = 0; i < 3; i++) await failedCommand(admin, failing.deviceId);
    await healthy.waitFor(() => healthy.received.length === 3, "three deliveries to the healthy webhook");
    await stuck.waitFor(() => stuck.hanging.size === 2, "two requests held by the stuck receiver");
    const held = [...stuck.hanging];

    const { sendCommand } = await admin.data(SendCommandDocument, { input: { deviceId: working.deviceId, type: "thermostat.setTemperature", payload: { celsius: 21 } } });
    await waitForStatus(admin, sendCommand.id, "SUCCEEDED");
    // The healthy webhook's deliveries and the command both completed while the stuck receiver held its requests.
    assert.ok(held.every((response) => stuck.hanging.has(response)), "the stuck receiver still holds the same requests");
    assert.equal(stuck.received.length, 2, "the third delivery waits: at most two attempts at once per webhook");
    stuck.respond = () => 200;
    stuck.release();
    await stuck.waitFor(() => stuck.received.length === 3, "the third delivery once the first two are answered");
  });

  it("a deleted webhook gets nothing more; admins only, own tenant", async () => {
    const admin = await a.as("admin");
    const r = await receiver();
    const hook = await createWebhook(admin, r.url, ["FAILED"]);
    const operator = await a.as("operator");
    assert.equal(await operator.errorCode(CreateAlertWebhookDocument, { url: r.url }), "FORBIDDEN");
    assert.equal(await operator.errorCode(AlertWebhooksDocument, {}), "FORBIDDEN");
    assert.equal(await operator.errorCode(DeleteAlertWebhookDocument, { id: hook.id }), "FORBIDDEN");
    const stranger = await a.as("admin", { tenant: uniqueName("other-") });
    assert.equal(await stranger.errorCode(DeleteAlertWebhookDocument, { id: hook.id }), "NOT_FOUND");
    assert.deepEqual((await stranger.data(AlertWebhooksDocument, {})).alertWebhooks, []);
    assert.equal(await admin.errorCode(CreateAlertWebhookDocument, { url: r.url, kinds: [] }), "BAD_USER_INPUT");

    assert.equal((await admin.data(DeleteAlertWebhookDocument, { id: hook.id })).deleteAlertWebhook, true);
    assert.equal(await admin.errorCode(DeleteAlertWebhookDocument, { id: hook.id }), "NOT_FOUND");
    const device = await a.device(uniqueName("th-"), "thermostat", { failRate: 1 });
    const commandId = await failedCommand(admin, device.deviceId);
    // The alert is written before its deliveries are derived and its mark is cleared; once the alert
    // is listed and the command no longer waits for it, no delivery for the deleted webhook exists.
    const commands = a.gateway.repositories.commands.collection;
    await eventually(async () => !(await commands.findOne({ _id: commandId, pendingAlert: { $exists: true } })), "the alert raised");
    assert.equal(await a.gateway.repositories.alertDeliveries.collection.countDocuments({ webhookId: hook.id }), 0);
    assert.equal(r.received.length, 0);
  });
});

describe("alert webhooks that keep failing", () => {
  let kit: TestGateway;
  let receiver: WebhookReceiver;
  before(async () => {
    receiver = await WebhookReceiver.start(() => 503);
    kit = await startTestGateway({ env: { ...ALLOW_LOOPBACK, ALERT_WEBHOOK_FIRST_RETRY_MS: "100", ALERT_WEBHOOK_RETRY_WINDOW_S: "4" } });
  });
  after(async () => {
    await receiver?.close();
    await kit?.stop();
  });

  it("are marked failing once a delivery gives up, until a later delivery succeeds", async () => {
    const admin = await kit.as("admin");
    const hook = await createWebhook(admin, receiver.url);
    const device = await kit.device(uniqueName("th-"), "thermostat", { failRate: 1 });
    const webhook = async () => (await admin.data(AlertWebhooksDocument, {})).alertWebhooks.find((w) => w.id === hook.id)!;

    // The gauge and the counter follow the stored mark within the same attempt, after it: waited for, not read at once.
    const metricIs = (name: string, value: number, labels?: Record<string, string>) =>
      eventually(async () => (await readMetric(kit.url, name, labels)) === value, `${name} ${value}`);

    await failedCommand(admin, device.deviceId);
    await eventually(async () => (await webhook()).failing, "the webhook marked failing");
    const attempts = receiver.received.length;
    assert.ok(attempts >= 2, `retried before giving up: ${attempts} attempts`);
    assert.equal(new Set(receiver.received.map((d) => d.deliveryId)).size, 1);
    await metricIs("gateway_alert_webhooks_failing", 1);
    await metricIs("gateway_alert_webhook_deliveries_total", 1, { outcome: "failed" });

    receiver.respond = () => 200;
    await failedCommand(admin, device.deviceId);
    await eventually(async () => !(await webhook()).failing, "failing cleared by a success");
    assert.ok((await webhook()).lastDeliveredAt);
    await metricIs("gateway_alert_webhooks_failing", 0);
    assert.equal(receiver.received.length, attempts + 1, "one request for the second alert, none more for the failed first");
  });
});

describe("alert webhook URLs without an allow-list", () => {
  let kit: TestGateway;
  before(async () => {
    kit = await startTestGateway();
  });
  after(async () => {
    await kit?.stop();
  });

  for (const url of [
    "http://127.0.0.1:8080/hook",
    "https://10.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:8080/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fd00:ec2::254]/",
    "http://localhost/hook",
    "http://0x7f.1/hook",
    "ftp://example.com/hook",
    "not a url",
  ]) {
    it(`refuses ${url} (BAD_USER_INPUT on url), storing nothing`, async () => {
      const admin = await kit.as("admin");
      const response = await admin.request(CreateAlertWebhookDocument, { url });
      const error = response.errors?.[0];
      assert.equal(error?.extensions?.code, "BAD_USER_INPUT", JSON.stringify(response));
      assert.equal(error?.extensions?.field, "url");
      assert.deepEqual((await admin.data(AlertWebhooksDocument, {})).alertWebhooks, []);
    });
  }
});

/**
 * Replicas race for the same deliveries: two workers on one store derive the same alerts at once (the
 * alert path on one, the start-up repair on both) and each attempt is still made once. Workers, not
 * gateways: two gateways on FerretDB would also race on the commands themselves (see Known limits).
 */
describe("two delivery workers on one store", () => {
  let database: Database;
  let receiver: WebhookReceiver;
  const workers: AlertDeliveryWorker[] = [];
  before(async () => {
    database = await connectDatabase(await testStoreUri(), uniqueName("t_"), createLogger("warn"));
    receiver = await WebhookReceiver.start();
  });
  after(async () => {
    for (const worker of workers) await worker.stop();
    await receiver?.close();
    await database?.close();
  });

  it("make each delivery's attempt once between them", async () => {
    const alerts = new AlertRepository(database.db);
    const webhooks = new AlertWebhookRepository(database.db);
    const deliveries = new AlertDeliveryRepository(database.db);
    await Promise.all([alerts.ensureIndexes(), webhooks.ensureIndexes(), deliveries.ensureIndexes()]);
    const tenant = uniqueName("tenant-");
    const created = new Date(Date.now() - 1_000);
    const hooks = ["w1", "w2"].map((id) => ({ id: uniqueName(id), tenant, url: receiver.url, secret: uniqueName("s"), createdBy: "test", createdAt: created, failing: false }));
    for (const hook of hooks) await webhooks.insert(hook);
    const raised: Alert[] = Array.from({ length: 5 }, (_, i) => ({
      id: uniqueName(`alert${i}-`),
      tenant,
      site: "site-a",
      kind: "FAILED",
      commandId: uniqueName("c"),
      deviceId: "th-1",
      level: 0,
      raisedAt: new Date(),
      message: "failed",
    }));
    for (const alert of raised) await alerts.insert(alert);

    const guard = new WebhookUrlGuard(new Set(["127.0.0.1"]));
    const settings = { firstRetryMs: 50, retryWindowMs: 60_000, timeoutMs: 5_000, safetyNet: true };
    for (const replica of ["r1", "r2"]) {
      workers.push(new AlertDeliveryWorker(deliveries, webhooks, alerts, guard, systemClock, replica, settings, new Metrics(), createLogger("warn")));
    }
    // Both start (each repairs the alerts' missing deliveries) and both are handed every alert at once.
    for (const worker of workers) worker.start();
    await Promise.all(raised.flatMap((alert) => workers.map((worker) => worker.deriveFor(alert))));

    const expected = raised.flatMap((alert) => hooks.map((hook) => `${alert.id}:${hook.id}`)).sort();
    await eventually(async () => (await deliveries.collection.countDocuments({ status: "DELIVERED" })) === expected.length, "all DELIVERED");
    assert.deepEqual(receiver.received.map((d) => d.deliveryId).sort(), expected);
    assert.deepEqual(await deliveries.collection.distinct("attempts"), [1]);
  });
});
