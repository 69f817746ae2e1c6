/** The first pause between starts once the window is at its minimum and sends are still slow. */
const FIRST_GAP_MS = 5;
/** At most this pause: by itself it never takes a rollout below 4 starts a second (240 a minute), however noisy its sends. */
const MAX_GAP_MS = 250;

/**
 * How many of a rollout's child sends may be under way at once, adjusted by how long they take
 * (additive increase, multiplicative decrease): a send much slower than the fastest one seen means the
 * store is queueing, and single commands would wait in that queue behind the rollout. The rollout then
 * backs off to what the store does without queueing, however high its maxPerMinute: down to the
 * minimum window, then by a pause between starts that doubles while sends stay slow (each started
 * child brings its later writes too, which a window of sends alone does not bound) and eases off as
 * they become fast again.
 */
export class SendWindow {
  private current: number;
  private fastestMs = Infinity;
  private gap = 0;

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

  /** The least time between two starts now (0: as the rate allows). */
  get gapMs(): number {
    return this.gap;
  }

  /** One send finished after `ms`. */
  record(ms: number): void {
    // The fastest drifts up slowly, so one lucky send does not make every later one look slow forever.
    this.fastestMs = Math.min(this.fastestMs * 1.01, ms);
    const slow = ms > this.fastestMs * this.slowFactor + this.slowMarginMs;
    if (slow) {
      if (this.current > this.min) this.current = Math.max(this.min, this.current / 2);
      else this.gap = Math.min(MAX_GAP_MS, this.gap === 0 ? FIRST_GAP_MS : this.gap * 2);
    } else if (this.gap > 0) {
      this.gap = this.gap * 0.9 < FIRST_GAP_MS ? 0 : this.gap * 0.9;
    } else {
      this.current = Math.min(this.max, this.current + 1 / this.current);
    }
  }
}
