/**
 * How many of a rollout's child sends may be under way at once, adjusted by how long they take
 * (additive increase, multiplicative decrease): a send much slower than the fastest one seen means the
 * store is queueing, and single commands would wait in that queue behind the rollout. The rollout then
 * backs off to what the store does without queueing, however high its maxPerMinute.
 */
export class SendWindow {
  private current: number;
  private fastestMs = Infinity;

  constructor(
    private readonly min: number,
    private readonly max: number,
    /** A send slower than fastest × slowFactor + slowMarginMs counts as queued. */
    private readonly slowFactor = 3,
    private readonly slowMarginMs = 10,
  ) {
    this.current = min;
  }

  /** Sends allowed under way now. */
  get size(): number {
    return Math.floor(this.current);
  }

  /** One send finished after `ms`. */
  record(ms: number): void {
    // The fastest drifts up slowly, so one lucky send does not make every later one look slow forever.
    this.fastestMs = Math.min(this.fastestMs * 1.01, ms);
    if (ms > this.fastestMs * this.slowFactor + this.slowMarginMs) this.current = Math.max(this.min, this.current / 2);
    else this.current = Math.min(this.max, this.current + 1 / this.current);
  }
}
