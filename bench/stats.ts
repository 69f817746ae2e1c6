/** Latency percentiles, in the units given (ms here). */
export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
}

/** Nearest-rank percentile of an ascending array: the smallest value with at least p % of the values at or below it. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function percentiles(values: readonly number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)), p99: round(percentile(sorted, 99)) };
}

/** Two decimals: enough for ms and MB, and keeps the JSON readable. */
export function round(value: number, digits = 2): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/**
 * Whether rising concurrency stopped paying: the last `patience` levels each gained less than
 * `minGain` (relative) over the best throughput before them.
 */
export function saturated(throughputs: readonly number[], minGain = 0.1, patience = 2): boolean {
  if (throughputs.length <= patience) return false;
  for (let i = throughputs.length - patience; i < throughputs.length; i++) {
    const best = Math.max(...throughputs.slice(0, i));
    if (throughputs[i]! > best * (1 + minGain)) return false;
  }
  return true;
}
