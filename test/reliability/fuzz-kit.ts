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

/** Runs a fuzz class, records its row, and fails the test on any crash. */
export async function fuzzClass<T>(c: FuzzClass<T>): Promise<CaseTally> {
  const tally = new CaseTally();
  const typed = c.typed ?? engineCode;
  let slowest = 0;
  const runs = c.runs ?? FUZZ_RUNS;
  await fc.assert(
    fc.asyncProperty(c.arb, async (input) => {
      const t = performance.now();
      try {
        await c.run(input);
        tally.value();
      } catch (e) {
        const code = typed(e);
        if (code === undefined) tally.crash(input, e);
        else tally.typed(code);
      }
      slowest = Math.max(slowest, performance.now() - t);
    }),
    { numRuns: runs, endOnFailure: true },
  );
  recordResult({
    area: "fuzz",
    name: c.name,
    path: c.path,
    cases: tally.cases,
    outcome: `${tally.summary(c.valueWord)}; slowest case ${slowest.toFixed(1)} ms`,
    crashes: tally.crashes,
    missedDeadlines: 0,
    undecided: 0,
    file: c.file,
  });
  expect(tally.crashSamples, "untyped errors").toEqual([]);
  expect(tally.cases).toBeGreaterThanOrEqual(runs);
  return tally;
}
