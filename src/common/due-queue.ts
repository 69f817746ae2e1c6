import type { Clock } from "../clock";

export interface DueQueueLimits {
  /** Tasks of one key (here: one webhook) running at once. */
  perKey: number;
  /** Tasks running at once overall. */
  total: number;
  /** Ids held at most; beyond it `schedule` refuses (a slower path must find them). */
  capacity: number;
}

/**
 * Runs a task per id when it is due, from memory: one timer for the earliest due time, so nothing
 * polls. Runs are bounded per key and overall, so a key whose tasks hang (a webhook that never
 * answers) holds only its own slots and never delays the others. A run returns when to run the id
 * again, or null when it is done; a run that throws is tried again after `retryAfterErrorMs`.
 */
export class DueQueue {
  private readonly waiting = new Map<string, { at: number; key: string }>();
  private readonly ready = new Map<string, string[]>();
  private readonly queued = new Set<string>();
  private readonly running = new Set<string>();
  private readonly runningPerKey = new Map<string, number>();
  private readonly runs = new Set<Promise<void>>();
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly task: (id: string) => Promise<Date | null>,
    private readonly limits: DueQueueLimits,
    private readonly clock: Clock,
    private readonly retryAfterErrorMs: number,
    private readonly onError: (id: string, error: unknown) => void,
    private readonly onSizeChange: (size: number) => void = () => {},
  ) {}

  /** Ids waiting, due or running. */
  get size(): number {
    return this.waiting.size + this.queued.size + this.running.size;
  }

  /**
   * Runs `id` at `at` (or at the earlier time, if it waits already). An id that is due or running is
   * left alone: its run says itself when it is needed again. `false` when the queue is full or stopped.
   */
  schedule(id: string, key: string, at: Date): boolean {
    if (this.stopped) return false;
    if (this.running.has(id) || this.queued.has(id)) return true;
    const existing = this.waiting.get(id);
    if (existing) {
      existing.at = Math.min(existing.at, at.getTime());
    } else {
      if (this.size >= this.limits.capacity) return false;
      this.waiting.set(id, { at: at.getTime(), key });
      this.onSizeChange(this.size);
    }
    this.arm();
    return true;
  }

  has(id: string): boolean {
    return this.waiting.has(id) || this.queued.has(id) || this.running.has(id);
  }

  /** No new runs; resolves when the running ones have ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.all([...this.runs]);
  }

  private arm(): void {
    clearTimeout(this.timer);
    if (this.stopped || this.waiting.size === 0) return;
    let earliest = Infinity;
    for (const { at } of this.waiting.values()) earliest = Math.min(earliest, at);
    // setTimeout holds at most 2^31-1 ms; a later time is simply re-armed then.
    const delay = Math.min(Math.max(0, earliest - this.clock.now().getTime()), 2 ** 31 - 1);
    this.timer = setTimeout(() => this.release(), delay);
    this.timer.unref();
  }

  /** Moves what is due to its key's line, starts what the limits allow. */
  private release(): void {
    const now = this.clock.now().getTime();
    for (const [id, { at, key }] of this.waiting) {
      if (at > now) continue;
      this.waiting.delete(id);
      this.queued.add(id);
      const line = this.ready.get(key);
      if (line) line.push(id);
      else this.ready.set(key, [id]);
    }
    this.pump();
    this.arm();
  }

  private pump(): void {
    for (const [key, line] of this.ready) {
      while (line.length && this.running.size < this.limits.total && (this.runningPerKey.get(key) ?? 0) < this.limits.perKey && !this.stopped) {
        this.start(line.shift()!, key);
      }
      if (line.length === 0) this.ready.delete(key);
    }
  }

  private start(id: string, key: string): void {
    this.queued.delete(id);
    this.running.add(id);
    this.runningPerKey.set(key, (this.runningPerKey.get(key) ?? 0) + 1);
    const run = this.task(id)
      .catch((error: unknown) => {
        this.onError(id, error);
        return new Date(this.clock.now().getTime() + this.retryAfterErrorMs);
      })
      .then((next) => {
        this.running.delete(id);
        const left = this.runningPerKey.get(key)! - 1;
        if (left) this.runningPerKey.set(key, left);
        else this.runningPerKey.delete(key);
        this.runs.delete(run);
        if (next && !this.stopped) this.waiting.set(id, { at: next.getTime(), key });
        this.onSizeChange(this.size);
        this.pump();
        this.arm();
      });
    this.runs.add(run);
  }
}
