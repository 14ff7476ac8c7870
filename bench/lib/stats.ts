// Sample statistics for the benchmarks: nearest-rank percentiles over sorted samples.
// Pure functions, no timing of their own (unit-tested in test/bench/smoke.test.ts).

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile (p in [0, 100]) of already sorted ascending samples. */
export function percentileSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError("percentile of no samples");
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} outside [0, 100]`);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

export function percentile(samples: readonly number[], p: number): number {
  return percentileSorted(
    [...samples].sort((a, b) => a - b),
    p,
  );
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new RangeError("summary of no samples");
  const s = [...samples].sort((a, b) => a - b);
  return {
    n: s.length,
    min: s[0]!,
    p50: percentileSorted(s, 50),
    p90: percentileSorted(s, 90),
    p99: percentileSorted(s, 99),
    max: s[s.length - 1]!,
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

/**
 * A 95% bootstrap interval for pQ(b) − pQ(a) of two independent samples (Q a percentile,
 * nearest rank as in summarize): both are resampled with replacement `resamples` times (a
 * fixed-seed generator, so a run's text is reproducible from its samples). It shows how far
 * the difference moves by sampling alone; load that drifts during a run is not in it. A p99
 * rests on the slowest 1%, so its interval is much wider than the median's.
 */
export function differenceInterval(
  a: readonly number[],
  b: readonly number[],
  q = 50,
  resamples = 1000,
  seed = 1,
): { lo: number; hi: number } {
  if (a.length === 0 || b.length === 0) throw new RangeError("interval of no samples");
  if (!(q > 0 && q <= 100)) throw new RangeError(`percentile ${q} out of (0, 100]`);
  let state = seed >>> 0;
  // mulberry32: small, fast, good enough for resampling indices.
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const resampled = (x: readonly number[], buf: Float64Array) => {
    for (let i = 0; i < x.length; i++) buf[i] = x[Math.floor(random() * x.length)]!;
    buf.sort();
    return buf[Math.max(1, Math.ceil((q / 100) * x.length)) - 1]!;
  };
  const ba = new Float64Array(a.length);
  const bb = new Float64Array(b.length);
  const diffs = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) diffs[r] = resampled(b, bb) - resampled(a, ba);
  diffs.sort();
  const sorted = Array.from(diffs);
  return { lo: percentileSorted(sorted, 2.5), hi: percentileSorted(sorted, 97.5) };
}

/** Formats a number of milliseconds with sensible precision (µs below 1 ms). */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (Math.abs(ms) < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (Math.abs(ms) < 10) return `${ms.toFixed(2)} ms`;
  if (Math.abs(ms) < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

export function fmtRate(perSecond: number): string {
  return perSecond >= 100
    ? `${Math.round(perSecond).toLocaleString("en-US")}/s`
    : `${perSecond.toFixed(1)}/s`;
}

export function fmtRatio(r: number): string {
  if (!Number.isFinite(r)) return String(r);
  return r >= 100 ? `${Math.round(r).toLocaleString("en-US")}×` : `${r.toFixed(2)}×`;
}

export function fmtMB(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** One-line "p50 X, p99 Y (n=N)" rendering of a summary in ms. */
export function fmtSummary(s: Summary): string {
  return `p50 ${fmtMs(s.p50)}, p99 ${fmtMs(s.p99)} (n=${s.n})`;
}
