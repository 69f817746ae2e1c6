const RECOMPUTE_EVERY = 16;

/**
 * SENT's wait for the device's final reply, so that SENT, DELIVERED and SUCCEEDED (or FAILED) cost one
 * store write: twice the 99th percentile of how late the final replies of recent commands came, within
 * [minMs, maxMs]. A device that answers in 3 ms is written after 3 ms (the final reply ends the wait);
 * devices answering later, as on a loaded gateway or store, raise the wait to cover them, which takes
 * writes off the store exactly when it is the bottleneck. Only SENT's announcement waits: the deadline
 * counts from the broker's acknowledgement.
 */
export class AdaptiveLinger {
  private readonly recent: number[] = [];
  private slot = 0;
  private seen = 0;
  private current: number;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly window = 128,
  ) {
    this.current = minMs;
  }

  /** The wait for SENT now. */
  get ms(): number {
    return this.current;
  }

  /** How long after SENT's wait began the final reply arrived (in time to join the write or not). */
  observe(ms: number): void {
    if (this.recent.length < this.window) this.recent.push(ms);
    else this.recent[this.slot] = ms;
    this.slot = (this.slot + 1) % this.window;
    if (++this.seen % RECOMPUTE_EVERY !== 0 && this.recent.length >= RECOMPUTE_EVERY) return;
    const sorted = [...this.recent].sort((a, b) => a - b);
    // A high percentile costs a quick device nothing (its final reply ends the wait); it spares a write for nearly all.
    const p99 = sorted[Math.floor(0.99 * (sorted.length - 1))]!;
    this.current = Math.min(this.maxMs, Math.max(this.minMs, Math.ceil(2 * p99)));
  }
}
