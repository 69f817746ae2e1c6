/** Longest single wait: Node's timers overflow past 2^31 ms (24.8 days); a longer one just waits again. */
const MAX_WAIT_MS = 3_600_000;

/**
 * Runs each entry at its time with one timer for all of them (a binary min-heap on `at`). Entries
 * are never removed early: whoever handles one checks that it still applies.
 */
export class TimerQueue<T> {
  private readonly heap: Array<{ at: number; value: T }> = [];
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;
  private stopped = false;

  constructor(
    private readonly onDue: (value: T) => void,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.heap.length;
  }

  add(at: number, value: T): void {
    if (this.stopped) return;
    const heap = this.heap;
    heap.push({ at, value });
    for (let i = heap.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= heap[i]!.at) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
    if (at < this.timerAt) this.arm();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.heap.length = 0;
  }

  private arm(): void {
    clearTimeout(this.timer);
    const top = this.heap[0];
    if (!top || this.stopped) {
      this.timerAt = Infinity;
      return;
    }
    this.timerAt = top.at;
    this.timer = setTimeout(() => this.fire(), Math.min(Math.max(0, top.at - this.now()), MAX_WAIT_MS));
    this.timer.unref();
  }

  private fire(): void {
    const now = this.now();
    while (this.heap.length > 0 && this.heap[0]!.at <= now) this.onDue(this.pop());
    this.arm();
  }

  private pop(): T {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < heap.length && heap[left]!.at < heap[smallest]!.at) smallest = left;
        if (right < heap.length && heap[right]!.at < heap[smallest]!.at) smallest = right;
        if (smallest === i) break;
        [heap[smallest], heap[i]] = [heap[i]!, heap[smallest]!];
        i = smallest;
      }
    }
    return top.value;
  }
}
