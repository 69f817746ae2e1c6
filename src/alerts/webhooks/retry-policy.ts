/** When a failed delivery is tried again: growing back-off with jitter, for a bounded window. */
export interface RetryPolicy {
  /** Back-off after the first failed attempt; each further one doubles it, up to MAX_BACKOFF_MS. */
  firstRetryMs: number;
  /** How long after the alert a delivery is retried before it is marked failed (24 h by default). */
  retryWindowMs: number;
}

const MAX_BACKOFF_MS = 60 * 60 * 1000;

/**
 * The time of the attempt after failed attempt `attempt` (1-based), or `null` once the window since
 * `createdAt` is over. The jitter draws from the upper half of the back-off, so receivers that failed
 * together (an outage) are not hit together again, and the back-off still grows.
 */
export function nextAttemptAt(policy: RetryPolicy, attempt: number, createdAt: Date, now: Date, random: () => number = Math.random): Date | null {
  const end = createdAt.getTime() + policy.retryWindowMs;
  if (now.getTime() >= end) return null;
  const backoff = Math.min(MAX_BACKOFF_MS, policy.firstRetryMs * 2 ** Math.min(attempt - 1, 30));
  const delay = backoff / 2 + random() * (backoff / 2);
  // The last attempt is made at the end of the window rather than skipped.
  return new Date(Math.min(now.getTime() + delay, end));
}
