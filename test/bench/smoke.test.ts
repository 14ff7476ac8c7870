// The benchmark harness's pure helpers (no timing assertions: benchmarks are not tests).
import { describe, expect, it } from "vitest";
import { renderReport } from "../../bench/lib/report.js";
import { fmtMs, fmtRatio, median, differenceInterval, percentile, summarize } from "../../bench/lib/stats.js";

describe("bench stats", () => {
  it("nearest-rank percentiles", () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile(xs, 0)).toBe(1);
    expect(median([3, 1, 2])).toBe(2);
    expect(percentile([7], 99)).toBe(7);
  });

  it("summaries and bad input", () => {
    expect(summarize([4, 1, 3, 2])).toEqual({ n: 4, min: 1, p50: 2, p90: 4, p99: 4, max: 4, mean: 2.5 });
    expect(() => summarize([])).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
  });

  it("bootstraps an interval around a difference of percentiles, reproducibly", () => {
    // Two samples whose medians differ by exactly 10, with spread.
    const a = Array.from({ length: 400 }, (_, i) => 100 + (i % 40));
    const b = a.map((x) => x + 10);
    const iv = differenceInterval(a, b);
    expect(iv.lo).toBeLessThanOrEqual(10);
    expect(iv.hi).toBeGreaterThanOrEqual(10);
    expect(iv.hi - iv.lo).toBeLessThan(10); // 400 samples pin it down
    expect(differenceInterval(a, b)).toEqual(iv); // same seed, same answer
    // Identical constant samples: no spread at all.
    expect(differenceInterval([5, 5, 5], [7, 7, 7])).toEqual({ lo: 2, hi: 2 });
    expect(() => differenceInterval([], [1])).toThrow(RangeError);
    expect(() => differenceInterval([1], [1], 0)).toThrow(RangeError);
    // The p99 of a sample with a 2% tail sits in the tail; shifting only the tail moves it,
    // and its interval is wider than the median's.
    const body = Array.from({ length: 980 }, (_, i) => 100 + (i % 20));
    const tailA = [...body, ...Array.from({ length: 20 }, (_, i) => 1000 + i * 10)];
    const tailB = [...body, ...Array.from({ length: 20 }, (_, i) => 1500 + i * 10)];
    const p99 = differenceInterval(tailA, tailB, 99);
    expect(p99.lo).toBeGreaterThan(0);
    expect(p99.hi).toBeLessThanOrEqual(700);
    const p50 = differenceInterval(tailA, tailB, 50);
    expect(Math.abs(p50.lo)).toBeLessThanOrEqual(3);
    expect(Math.abs(p50.hi)).toBeLessThanOrEqual(3);
  });

  it("formats", () => {
    expect(fmtMs(0.25)).toBe("250 µs");
    expect(fmtMs(2.5)).toBe("2.50 ms");
    expect(fmtMs(1500)).toBe("1.50 s");
    expect(fmtRatio(1.234)).toBe("1.23×");
  });

  it("renders a missed target and a failed benchmark honestly", () => {
    const md = renderReport(
      {
        cores: 2,
        cpuModel: "x",
        node: "v20",
        platform: "Linux",
        memTotalMB: 1,
        date: "d",
        loadBefore: [1, 1, 1],
      },
      [
        {
          id: "a",
          title: "A",
          rows: [
            { what: "w|x", how: "h", baseline: "b", result: "r", ratio: "2×", target: "≤ 1×", met: false },
          ],
          details: [],
        },
        { id: "b", title: "B", rows: [], details: [], error: "boom" },
      ],
      "npm run bench",
    );
    expect(md).toContain("| w\\|x | h | b | r | 2× | ≤ 1× | **NO** |");
    expect(md).toContain("could not run: boom");
    expect(md).toContain("Targets missed in this run: w|x; B.");
    expect(md).toContain("2 cores");
  });
});
