import type { Logger } from "../logger";

/**
 * Warn lines that outsiders can cause (refused MQTT connections, publishes, subscriptions): the first of
 * each kind is written, then at most one per interval, carrying how many were left out since. The counts
 * in /metrics carry every one; the log only says that it is happening and to whom.
 */
export class ThrottledLog {
  private readonly kinds = new Map<string, { lastAt: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(kind: string, fields: Record<string, unknown>, message: string): void {
    const at = this.now();
    const seen = this.kinds.get(kind);
    if (seen && at - seen.lastAt < this.intervalMs) {
      seen.suppressed++;
      return;
    }
    this.log.warn(seen?.suppressed ? { ...fields, suppressedSinceLast: seen.suppressed } : fields, message);
    this.kinds.set(kind, { lastAt: at, suppressed: 0 });
  }
}
