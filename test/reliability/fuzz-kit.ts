// Shared pieces of the reliability fuzz files: ≥ 10,000 cases per input class, small inputs,
// every outcome tallied (value, typed error, crash) and written to docs/reliability.md.
import fc from "fast-check";
import { expect } from "vitest";
import { EngineError } from "../../src/engine/errors.js";
import { CaseTally, recordResult } from "./results.js";

/** Cases per input class (the issue asks for at least 10,000). */
export const FUZZ_RUNS = 10_000;

/** Mutations of a valid input: bit flips, truncations, insertions, or noise. */
export function mutatedBytes(seed: Uint8Array, noiseMax = 256): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.tuple(fc.nat(seed.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
      const b = Uint8Array.from(seed);
      b[i] = b[i]! ^ x;
      return b;
    }),
    fc.nat(seed.length).map((n) => seed.subarray(0, n)),
    fc
      .tuple(fc.nat(seed.length), fc.uint8Array({ minLength: 1, maxLength: 16 }))
      .map(([i, ins]) => Uint8Array.from([...seed.subarray(0, i), ...ins, ...seed.subarray(i)])),
    fc.uint8Array({ maxLength: noiseMax }),
  );
}

/** JSON values with hostile leaves (huge numbers, __proto__ keys, odd strings), kept small. */
export const hostileJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom(
      null,
      true,
      false,
      0,
      -1,
      1e308,
      Number.MAX_SAFE_INTEGER + 2,
      "",
      "__proto__",
      "constructor",
    ),
    fc.string({ maxLength: 12 }),
    fc.integer(),
    fc.array(tie("v"), { maxLength: 4 }),
    fc.dictionary(
      fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("__proto__", "constructor", "toString")),
      tie("v"),
      { maxKeys: 4 },
    ),
  ),
})).v;

/** Sets `path` (dot/index list) in a deep copy of `obj` to `value`. */
export function setPath(obj: unknown, pathParts: (string | number)[], value: unknown): unknown {
  const copy = structuredClone(obj) as Record<string | number, unknown>;
  let cur: Record<string | number, unknown> = copy;
  for (let i = 0; i < pathParts.length - 1; i++) {
    const k = pathParts[i]!;
    const next = cur[k];
    if (typeof next !== "object" || next === null) return copy;
    cur = next as Record<string | number, unknown>;
  }
  const last = pathParts[pathParts.length - 1]!;
  if (value === undefined) delete cur[last];
  else cur[last] = value;
  return copy;
}

/** Every (path) to a leaf or node of a JSON value, for targeted mutations. */
export function pathsOf(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []) {
  if (prefix.length > 0) out.push(prefix);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) pathsOf(v[i], [...prefix, i], out);
  } else if (typeof v === "object" && v !== null)
    for (const [k, x] of Object.entries(v)) pathsOf(x, [...prefix, k], out);
  return out;
}

/** Targeted mutations of a valid JSON document: a node replaced, removed, or the whole doc noise. */
export function mutatedJson(seed: unknown): fc.Arbitrary<unknown> {
  const paths = pathsOf(seed);
  return fc.oneof(
    fc.tuple(fc.constantFrom(...paths), hostileJson).map(([p, v]) => setPath(seed, p, v)),
    fc.constantFrom(...paths).map((p) => setPath(seed, p, undefined)),
    fc
      .tuple(fc.constantFrom(...paths), fc.constantFrom(...paths), hostileJson)
      .map(([p, q, v]) => setPath(setPath(seed, p, v), q, undefined)),
    hostileJson,
  );
}

export interface FuzzClass<T> {
  name: string;
  /** What the cases go through, for the table. */
  path: string;
  arb: fc.Arbitrary<T>;
  /**
   * Runs one case. Return normally when the input gave a value/decision (it may assert on
   * it); throw for a rejection. `typed` decides whether a thrown value is a typed error
   * (default: EngineError).
   */
  run(input: T): void | Promise<void>;
  typed?: (e: unknown) => string | undefined;
  file: string;
  runs?: number;
  valueWord?: string;
}

function engineCode(e: unknown): string | undefined {
  return e instanceof EngineError ? e.code : undefined;
}

/** A case slower than this missed its deadline: every class here answers in milliseconds. */
export const CASE_DEADLINE_MS = 1_000;
/** A case still unsettled after this never answered: counted undecided, and the run goes on. */
export const CASE_HANG_MS = 10_000;

/** Resolves true when `p` settles (either way) within `ms`, false when it is still pending. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  const settled = p.then(() => true as const);
  settled.catch(() => {}); // a rejection after the bound must not surface as unhandled
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs a fuzz class, fails the test on any crash, then records its row: crashes (untyped
 * errors), missed deadlines (cases slower than CASE_DEADLINE_MS) and undecided cases (never
 * settled within CASE_HANG_MS) are all counted.
 */
export async function fuzzClass<T>(c: FuzzClass<T>): Promise<CaseTally> {
  const tally = new CaseTally();
  const typed = c.typed ?? engineCode;
  let slowest = 0;
  let missed = 0;
  const runs = c.runs ?? FUZZ_RUNS;
  await fc.assert(
    fc.asyncProperty(c.arb, async (input) => {
      const t = performance.now();
      try {
        const r = c.run(input);
        if (r instanceof Promise && !(await settlesWithin(r, CASE_HANG_MS))) tally.hung();
        else {
          await r;
          tally.value();
        }
      } catch (e) {
        const code = typed(e);
        if (code === undefined) tally.crash(input, e);
        else tally.typed(code);
      }
      const ms = performance.now() - t;
      slowest = Math.max(slowest, ms);
      if (ms > CASE_DEADLINE_MS) missed++;
    }),
    { numRuns: runs, endOnFailure: true },
  );
  expect(tally.crashSamples, "untyped errors").toEqual([]);
  expect(tally.undecided, "cases that never settled").toBe(0);
  expect(tally.cases).toBeGreaterThanOrEqual(runs);
  recordResult({
    area: "fuzz",
    name: c.name,
    path: c.path,
    cases: tally.cases,
    outcome: `${tally.summary(c.valueWord)}; slowest case ${slowest.toFixed(1)} ms (deadline ${CASE_DEADLINE_MS} ms)`,
    crashes: tally.crashes,
    missedDeadlines: missed,
    undecided: tally.undecided,
    file: c.file,
  });
  return tally;
}
