// When does a time-dependent decision stop holding? Conditions that read `now` ("the scan is
// younger than 7 days") are true now and turn false later; a cached allow must expire then.
// We look for the first change within the cache horizon: sample the horizon in 16 steps,
// then bisect the first interval that changed down to one second. Conditions monotone in
// time (comparisons of `now` with fixed timestamps, the ones policies use) are found
// exactly; a condition that flips and flips back within one step could be missed.

const SAMPLES = 16;

/**
 * A time at most one second before `holds` first stops being true after `now` (within
 * `horizonMs`), or undefined when it holds throughout. `holds(now)` is assumed true.
 */
export function firstChange(holds: (at: Date) => boolean, now: Date, horizonMs: number): Date | undefined {
  const t0 = now.getTime();
  if (horizonMs <= 0) return undefined;
  let lo = t0;
  let hi: number | undefined;
  for (let i = 1; i <= SAMPLES; i++) {
    const t = t0 + Math.ceil((horizonMs * i) / SAMPLES);
    if (!holds(new Date(t))) {
      hi = t;
      break;
    }
    lo = t;
  }
  if (hi === undefined) return undefined;
  let top: number = hi;
  while (top - lo > 1000) {
    const mid: number = lo + Math.floor((top - lo) / 2);
    if (holds(new Date(mid))) lo = mid;
    else top = mid;
  }
  // lo still held, hi did not: expiring at lo never serves an allow past the change.
  return new Date(lo);
}

export function earliest(...dates: (Date | undefined)[]): Date | undefined {
  let best: Date | undefined;
  for (const d of dates) if (d && (!best || d < best)) best = d;
  return best;
}
