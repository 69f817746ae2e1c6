import type { AlertKind } from "../alert";

/** An HTTPS (or HTTP) endpoint of a tenant that receives its alerts (CONTRACT §6.4). */
export interface AlertWebhook {
  id: string;
  tenant: string;
  url: string;
  /** Absent: every kind, including kinds added later. */
  kinds?: AlertKind[];
  /** Signs every delivery; shown to the admin once, at creation, and never returned again. */
  secret: string;
  createdBy: string;
  createdAt: Date;
  lastDeliveredAt?: Date;
  /** A delivery gave up after the retry window; cleared by the next success. */
  failing: boolean;
}

export const subscribesTo = (webhook: AlertWebhook, kind: AlertKind): boolean => !webhook.kinds || webhook.kinds.includes(kind);

export type DeliveryStatus = "PENDING" | "DELIVERED" | "FAILED";

/**
 * One alert for one webhook. Its id is derived from both (`${alertId}:${webhookId}`), so deriving the
 * deliveries of an alert again (after a crash, on another replica) writes each one once; it is also the
 * `x-alert-delivery` header receivers deduplicate on.
 */
export interface AlertDelivery {
  id: string;
  tenant: string;
  alertId: string;
  webhookId: string;
  /** The alert's JSON as first derived: every attempt sends these very bytes. */
  body: string;
  status: DeliveryStatus;
  /** Attempts started so far; attempt n+1 is claimed by inserting its number (see the repository). */
  attempts: number;
  createdAt: Date;
  /** When the next attempt is due; while an attempt runs, when its lease ends. */
  nextAttemptAt: Date;
  lastAttemptAt?: Date;
  lastError?: string;
  deliveredAt?: Date;
  failedAt?: Date;
  /** The trace of the raise that derived it (tracing on), which each attempt's span joins. */
  traceparent?: string;
}

export const deliveryIdOf = (alertId: string, webhookId: string) => `${alertId}:${webhookId}`;
