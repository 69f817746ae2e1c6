import type { Clock } from "../clock";

export type TakeResult = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
}

/** Buckets kept before idle (full) ones are dropped. */
const PRUNE_ABOVE = 10_000;

/**
 * A token bucket per key, in memory: `perMinute` tokens refill evenly over a minute and `burst` (default
 * a full minute's worth) may be spent at once. Per process, so N replicas allow N times the rate.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;

  constructor(
    perMinute: number,
    private readonly clock: Clock,
    private readonly burst = perMinute,
  ) {
    this.perMs = perMinute / 60_000;
  }

  take(key: string): TakeResult {
    const now = this.clock.now().getTime();
    const bucket = this.refilled(this.buckets.get(key), now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      this.buckets.set(key, bucket);
      if (this.buckets.size > PRUNE_ABOVE) this.prune(now);
      return { allowed: true };
    }
    this.buckets.set(key, bucket);
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000)) };
  }

  private refilled(bucket: Bucket | undefined, now: number): Bucket {
    if (!bucket) return { tokens: this.burst, at: now };
    return { tokens: Math.min(this.burst, bucket.tokens + Math.max(0, now - bucket.at) * this.perMs), at: now };
  }

  /** A full bucket is the same as none: forgetting it bounds memory without changing any answer. */
  private prune(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (this.refilled(bucket, now).tokens >= this.burst) this.buckets.delete(key);
    }
  }
}
