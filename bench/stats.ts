/** Latency percentiles, in the units given (ms here), with the number of samples they come from. */
export interface Percentiles {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Below this many samples a p99 is one of the few largest values: it is reported as "max of n". */
export const MIN_SAMPLES_FOR_P99 = 1000;

/** Nearest-rank percentile of an ascending array: the smallest value with at least p % of the values at or below it. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function percentiles(values: readonly number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(percentile(sorted, 100)),
  };
}

/** The tail figure two sides can be compared on: p99 when both have enough samples for one, else the maximum of each. */
export function comparableTail(a: Percentiles, b: Percentiles): { label: string; a: number; b: number } {
  if (a.n >= MIN_SAMPLES_FOR_P99 && b.n >= MIN_SAMPLES_FOR_P99) return { label: "p99", a: a.p99, b: b.p99 };
  return { label: "max", a: a.max, b: b.max };
}

/** How a tail figure is printed: "p99 (n=1200)", or "max of 240" when n is too small for a p99. */
export function tailLabel(p: Percentiles): string {
  return p.n >= MIN_SAMPLES_FOR_P99 ? `p99 (n=${p.n})` : `max of ${p.n}`;
}

/** The central value of repeated runs and how far apart they were. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** (max − min) / median, in percent. */
  spreadPercent: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function spread(values: readonly number[]): Spread {
  const m = median(values);
  const min = Math.min(...values);
  const max = Math.max(...values);
  return { median: round(m, 1), min: round(min, 1), max: round(max, 1), spreadPercent: m > 0 ? round(((max - min) / m) * 100, 1) : NaN };
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
