import type { Clock } from "../../clock";
import { DueQueue } from "../../common/due-queue";
import { faultPoint } from "../../common/fault-points";
import type { Logger } from "../../logger";
import type { Metrics } from "../../observability/metrics";
import { annotate, inSpan, SpanKind, traceparentOf, type TraceContext } from "../../observability/tracing";
import type { AlertDeliveryRepository } from "../../store/alert-delivery-repository";
import type { AlertRepository } from "../../store/alert-repository";
import type { AlertWebhookRepository } from "../../store/alert-webhook-repository";
import { alertMessage, type Alert } from "../alert";
import { deliveryIdOf, subscribesTo, type AlertDelivery, type AlertWebhook } from "./alert-webhook";
import { nextAttemptAt, type RetryPolicy } from "./retry-policy";
import { signatureHeader } from "./signature";
import { RefusedWebhookUrl, type WebhookUrlGuard } from "./url-guard";
import { postOnce, type PostResult } from "./webhook-post";

const MAX_RESPONSE_BYTES = 64 * 1024;
/** How long a claimed attempt holds its delivery beyond the attempt's timeout, so that only a dead replica's lease runs out. */
const LEASE_MARGIN_MS = 25_000;
/** Claims of dead replicas skipped at most in one go (each is one attempt that may or may not have been made). */
const MAX_ABANDONED_CLAIMS = 10;
/** The rare scan for deliveries no replica holds in memory (their holder died); everything else is timed from memory. */
const SAFETY_NET_INTERVAL_MS = 60_000;
const BATCH = 1_000;
const STORE_RETRY_MS = 5_000;
const LIMITS = { perKey: 2, total: 32, capacity: 10_000 };

/**
 * Delivers alerts to webhooks (CONTRACT §6.4). Deliveries are derived from the stored alert, with ids
 * derived from the alert and the webhook, and kept in the store; this replica times their attempts
 * from memory (a DueQueue rebuilt from the store at start, plus a rare safety-net scan), takes each
 * attempt by a unique insert so that any number of replicas make it once, and posts it with bounded
 * concurrency per webhook. Nothing here runs on the command path: it only writes deliveries there.
 */
export interface DeliverySettings extends RetryPolicy {
  /** One attempt, answer included (5 s by default). */
  timeoutMs: number;
  /** Scan for deliveries another replica left behind: only where the store may have other writers (as the sweeper's). */
  safetyNet: boolean;
}

export class AlertDeliveryWorker {
  private readonly queue: DueQueue;
  private readonly leaseMs: number;
  private safetyNet?: NodeJS.Timeout;
  private recovering?: Promise<void>;

  constructor(
    private readonly deliveries: AlertDeliveryRepository,
    private readonly webhooks: AlertWebhookRepository,
    private readonly alerts: AlertRepository,
    private readonly guard: WebhookUrlGuard,
    private readonly clock: Clock,
    private readonly replicaId: string,
    private readonly settings: DeliverySettings,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.leaseMs = settings.timeoutMs + LEASE_MARGIN_MS;
    this.queue = new DueQueue(
      (id) => this.attempt(id),
      LIMITS,
      clock,
      STORE_RETRY_MS,
      (id, error) => log.warn({ deliveryId: id, err: (error as Error).message }, "delivery attempt failed; trying again"),
      (size) => metrics.alertWebhookDeliveriesScheduled.set(size),
    );
  }

  /**
   * AlertService's hook, called with the stored alert before its command's mark is cleared: a crash
   * before this ends leaves the mark, and deriving again writes each delivery once.
   */
  readonly deriveFor = async (alert: Alert, trace?: TraceContext): Promise<void> => {
    await this.derive(alert, await this.webhooks.forTenant(alert.tenant), undefined, traceparentOf(trace));
  };

  /** Rebuilds the schedule from the store in the background, then scans rarely for what nobody holds. */
  start(): void {
    this.recovering = this.recover().catch((error) =>
      this.log.warn({ err: (error as Error).message }, "delivery recovery failed; the safety net will retry"),
    );
    if (!this.settings.safetyNet) return;
    this.safetyNet = setInterval(() => void this.scanDue().catch((error) => this.log.warn({ err: (error as Error).message }, "delivery scan failed")), SAFETY_NET_INTERVAL_MS);
    this.safetyNet.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.safetyNet);
    await this.recovering;
    await this.queue.stop();
  }

  private async derive(alert: Alert, webhooks: AlertWebhook[], existing?: Set<string>, traceparent?: string): Promise<void> {
    const body = alertMessage(alert);
    for (const webhook of webhooks) {
      // A webhook gets the alerts raised after it was created.
      if (!subscribesTo(webhook, alert.kind) || webhook.createdAt > alert.raisedAt) continue;
      const id = deliveryIdOf(alert.id, webhook.id);
      if (existing?.has(id)) continue;
      const now = this.clock.now();
      const delivery: AlertDelivery = { id, tenant: alert.tenant, alertId: alert.id, webhookId: webhook.id, body, status: "PENDING", attempts: 0, createdAt: now, nextAttemptAt: now, traceparent };
      await this.deliveries.insert(delivery);
      faultPoint("after-delivery-stored");
      // Derived before (another replica, an earlier try): scheduling it costs one read and claims nothing twice.
      this.queue.schedule(id, webhook.id, now);
    }
  }

  /**
   * At start: deliveries the alerts of the retry window should have and lack (a crash between the two
   * writes), then every PENDING delivery into the schedule, at its due time.
   */
  private async recover(): Promise<void> {
    const recent = await this.alerts.findRaisedSince(new Date(this.clock.now().getTime() - this.settings.retryWindowMs), BATCH);
    const existing = await this.deliveries.idsForAlerts(recent.map((alert) => alert.id));
    const webhooksOf = new Map<string, AlertWebhook[]>();
    for (const alert of recent) {
      let webhooks = webhooksOf.get(alert.tenant);
      if (!webhooks) webhooksOf.set(alert.tenant, (webhooks = await this.webhooks.forTenant(alert.tenant)));
      await this.derive(alert, webhooks, existing);
    }
    for (const delivery of await this.deliveries.findPending(BATCH)) this.queue.schedule(delivery.id, delivery.webhookId, delivery.nextAttemptAt);
    await this.refreshFailing();
  }

  private async scanDue(): Promise<void> {
    for (const delivery of await this.deliveries.findPending(BATCH, this.clock.now())) {
      if (!this.queue.has(delivery.id)) this.queue.schedule(delivery.id, delivery.webhookId, delivery.nextAttemptAt);
    }
    await this.refreshFailing();
  }

  private async refreshFailing(): Promise<void> {
    this.metrics.alertWebhooksFailing.set(await this.webhooks.countFailing());
  }

  /** One attempt of a delivery if it is due and this replica wins it; returns when to look at it again. */
  private async attempt(id: string): Promise<Date | null> {
    const delivery = await this.deliveries.findById(id);
    if (!delivery || delivery.status !== "PENDING") return null;
    const now = this.clock.now();
    if (delivery.nextAttemptAt > now) return delivery.nextAttemptAt;

    const attempt = await this.claim(delivery, now);
    if (attempt instanceof Date) return attempt;
    // Read again: a delivery that ended between the first read and the claim is left alone.
    const current = await this.deliveries.findById(id);
    if (!current || current.status !== "PENDING") return null;
    await this.deliveries.update(id, { attempts: attempt, lastAttemptAt: now, nextAttemptAt: new Date(now.getTime() + this.leaseMs) });
    const webhook = await this.webhooks.findById(delivery.webhookId);
    if (!webhook) return null; // deleted: its deliveries went with it

    const attributes = { "alert.id": delivery.alertId, "alert.delivery.id": id, "alert.webhook.id": webhook.id, "alert.delivery.attempt": attempt };
    const result = await inSpan("alert.webhook.deliver", { kind: SpanKind.CLIENT, parent: delivery.traceparent, attributes }, async (trace) => {
      const posted = await this.post(webhook, delivery, traceparentOf(trace));
      annotate(trace, { "alert.delivery.outcome": posted.outcome });
      return posted;
    });
    this.metrics.alertWebhookAttempts.inc({ outcome: result.outcome });
    const done = this.clock.now();
    if (result.outcome === "success") {
      await this.deliveries.update(id, { status: "DELIVERED", deliveredAt: done });
      await this.webhooks.markDelivered(webhook.id, done);
      await this.deliveries.dropClaims(id);
      this.metrics.alertWebhookDeliveries.inc({ outcome: "delivered" });
      if (webhook.failing) await this.refreshFailing();
      return null;
    }
    const retryAt = nextAttemptAt(this.settings, attempt, delivery.createdAt, done);
    if (retryAt) {
      await this.deliveries.update(id, { nextAttemptAt: retryAt, lastError: result.detail });
      return retryAt;
    }
    await this.deliveries.update(id, { status: "FAILED", failedAt: done, lastError: result.detail });
    await this.webhooks.markFailing(webhook.id);
    await this.deliveries.dropClaims(id);
    this.metrics.alertWebhookDeliveries.inc({ outcome: "failed" });
    await this.refreshFailing();
    this.log.warn({ deliveryId: id, webhookId: webhook.id, attempts: attempt, lastError: result.detail }, "alert delivery failed for the whole retry window");
    return null;
  }

  /**
   * The number of the attempt this replica now owns, or when to look again because another replica
   * holds it. A claim whose lease ran out without its attempt being recorded belongs to a dead
   * replica: that attempt counts as made, and the next one is claimed.
   */
  private async claim(delivery: AlertDelivery, now: Date): Promise<number | Date> {
    for (let attempt = delivery.attempts + 1; attempt <= delivery.attempts + MAX_ABANDONED_CLAIMS; attempt++) {
      if (await this.deliveries.claimAttempt(delivery.id, delivery.webhookId, attempt, this.replicaId, now)) return attempt;
      const claimedAt = await this.deliveries.claimedAt(delivery.id, attempt);
      if (claimedAt && claimedAt.getTime() + this.leaseMs > now.getTime()) return new Date(claimedAt.getTime() + this.leaseMs);
    }
    return new Date(now.getTime() + this.leaseMs);
  }

  /**
   * The URL is checked again (DNS may have changed) and the connection goes to the addresses checked.
   * `traceparent`: the attempt's span, sent on so that a traced receiver continues the trace.
   */
  private async post(webhook: AlertWebhook, delivery: AlertDelivery, traceparent: string | undefined): Promise<PostResult> {
    let url: URL;
    let addresses;
    try {
      url = this.guard.parse(webhook.url);
      addresses = await this.guard.check(url);
    } catch (error) {
      if (error instanceof RefusedWebhookUrl) return { outcome: "refused", detail: error.message };
      throw error;
    }
    const headers = {
      "user-agent": "iot-gateway-alerts",
      "x-alert-delivery": delivery.id,
      "x-alert-signature": signatureHeader(webhook.secret, delivery.body, Math.floor(this.clock.now().getTime() / 1000)),
      ...(traceparent && { traceparent }),
    };
    return postOnce(url, addresses, headers, delivery.body, { timeoutMs: this.settings.timeoutMs, maxResponseBytes: MAX_RESPONSE_BYTES });
  }
}
