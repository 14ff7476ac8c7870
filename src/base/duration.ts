// Go's time.ParseDuration, the format containerd and the kubelet write durations in.

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3, // micro sign
  "\u03bcs": 1e-3, // Greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
const DURATION_RE = /^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+$/;
const PART_RE = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/g;

/**
 * Go time.ParseDuration, in milliseconds; undefined when Go would refuse it. Optional sign,
 * then number+unit pairs ("1m30s", ".5s", "-2s"); a bare "0" (signed or not) is the only
 * unitless value; no surrounding spaces. Callers that cannot use a negative value say so.
 */
export function parseGoDuration(s: string): number | undefined {
  const unsigned = s.replace(/^[+-]/, "");
  if (unsigned === "0") return 0;
  if (!DURATION_RE.test(s)) return undefined;
  let total = 0;
  for (const m of unsigned.matchAll(PART_RE)) total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  return s.startsWith("-") ? -total : total;
}
