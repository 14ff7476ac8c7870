// The bounded string memo behind the create path's name parsing: it never holds more than
// its bound, never keeps long keys, and remembers undefined as an answer.
import { describe, expect, it } from "vitest";
import { memoPerObject, StringMemo } from "../../src/base/memo.js";

describe("StringMemo", () => {
  it("remembers values, undefined included, and returns what it stored", () => {
    const m = new StringMemo<string | undefined>(8);
    expect(m.set("a", "1")).toBe("1");
    expect(m.set("bad", undefined)).toBeUndefined();
    expect(m.get("a")).toBe("1");
    expect(m.has("bad")).toBe(true);
    expect(m.has("other")).toBe(false);
  });

  it("never holds more than its bound: full, it starts over", () => {
    const m = new StringMemo<number>(3);
    for (let i = 0; i < 3; i++) m.set(`k${i}`, i);
    expect(["k0", "k1", "k2"].every((k) => m.has(k))).toBe(true);
    m.set("k3", 3);
    expect(m.has("k3")).toBe(true);
    expect(["k0", "k1", "k2"].some((k) => m.has(k))).toBe(false);
  });

  it("does not keep keys longer than maxKey (but still returns the value)", () => {
    const m = new StringMemo<number>(8, 10);
    expect(m.set("x".repeat(11), 5)).toBe(5);
    expect(m.has("x".repeat(11))).toBe(false);
    m.set("x".repeat(10), 6);
    expect(m.get("x".repeat(10))).toBe(6);
  });
});

describe("memoPerObject", () => {
  it("gives each owner its own memo, the same one each time", () => {
    const of = memoPerObject<object, number>();
    const a = {};
    const b = {};
    of(a).set("k", 1);
    expect(of(a)).toBe(of(a));
    expect(of(a).get("k")).toBe(1);
    expect(of(b).get("k")).toBeUndefined();
  });
});
