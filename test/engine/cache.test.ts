import { describe, expect, it } from "vitest";
import { type Cacheable, VerdictCache } from "../../src/engine/cache.js";
import { EngineError } from "../../src/engine/errors.js";
import { createEngineCore } from "../../src/engine/verify.js";
import {
  deferred,
  digestN,
  error,
  fail,
  fakeDeps,
  manualClock,
  pass,
  policy,
  subject,
} from "./policy/engine-fakes.js";

describe("verdict cache", () => {
  it("50 concurrent verify calls for one key share one verification", async () => {
    const gate = deferred();
    const { deps, calls } = fakeDeps({ discover: () => gate.promise, cosign: pass("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    const p = await policy();
    const all = Array.from({ length: 50 }, () => engine.verify(subject(1), p));
    // Let every caller reach the single flight before discovery finishes.
    await new Promise((r) => setImmediate(r));
    gate.resolve();
    const verdicts = await Promise.all(all);
    expect(calls.discover).toBe(1);
    expect(calls.notation).toBe(1);
    expect(calls.cosign).toBe(1);
    expect(engine.stats().verifications).toBe(1);
    expect(engine.stats().joined).toBe(49);
    expect(verdicts.every((v) => v.allowed && v.outcome === "verified")).toBe(true);
    // The 51st is served from the cache.
    const again = await engine.verify(subject(1), p);
    expect(again.cached).toBe(true);
    expect(calls.discover).toBe(1);
  });

  it("negative verdicts expire after negativeTTLSeconds, positive ones after positiveTTLSeconds", async () => {
    const clock = manualClock();
    const { deps, calls } = fakeDeps({
      cosign: (s) =>
        s.digest === digestN(1) ? pass("cosign-key", "cosign")(s) : fail("cosign-key", "cosign")(s),
    });
    const engine = createEngineCore(deps, { now: clock.now });
    const p = await policy({ cache: { positiveTTLSeconds: 300, negativeTTLSeconds: 30 } });
    expect((await engine.verify(subject(1), p)).outcome).toBe("verified");
    expect((await engine.verify(subject(2), p)).outcome).toBe("rejected");
    expect(calls.discover).toBe(2);

    clock.advance(29);
    expect((await engine.verify(subject(2), p)).cached).toBe(true);
    expect(engine.cached(subject(2), p)?.outcome).toBe("rejected");
    clock.advance(2); // 31 s: the negative verdict is gone, the positive one is not
    expect(engine.cached(subject(2), p)).toBeUndefined();
    expect(engine.cached(subject(1), p)?.outcome).toBe("verified");
    const re = await engine.verify(subject(2), p);
    expect(re.cached).toBe(false);
    expect(calls.discover).toBe(3);

    clock.advance(300);
    expect(engine.cached(subject(1), p)).toBeUndefined();
  });

  it("verdicts that could not complete get the short failed TTL", async () => {
    const clock = manualClock();
    const { deps, calls } = fakeDeps({
      discover: () => {
        throw new EngineError("REGISTRY_UNAVAILABLE", "registry 127.0.0.1:5000 refused the connection");
      },
    });
    const engine = createEngineCore(deps, { now: clock.now, cache: { failedTTLSeconds: 2 } });
    const p = await policy();
    const v = await engine.verify(subject(1), p);
    expect(v.outcome).toBe("failed");
    expect((await engine.verify(subject(1), p)).cached).toBe(true);
    clock.advance(3);
    expect((await engine.verify(subject(1), p)).cached).toBe(false);
    expect(calls.discover).toBe(2);
  });

  it("stays under its entry and byte bounds", async () => {
    const { deps } = fakeDeps({ cosign: pass("cosign-key", "cosign") });
    const byCount = createEngineCore(deps, { cache: { maxEntries: 5 } });
    const p = await policy();
    for (let i = 1; i <= 40; i++) await byCount.verify(subject(i), p);
    expect(byCount.stats().entries).toBe(5);
    expect(byCount.stats().evicted).toBe(35);
    // The most recent ones are the ones kept.
    expect(byCount.cached(subject(40), p)).toBeDefined();
    expect(byCount.cached(subject(1), p)).toBeUndefined();

    const maxBytes = 20_000;
    const byBytes = createEngineCore(deps, { cache: { maxBytes } });
    for (let i = 1; i <= 40; i++) await byBytes.verify(subject(i), p);
    const s = byBytes.stats();
    expect(s.bytes).toBeLessThanOrEqual(maxBytes);
    expect(s.entries).toBeGreaterThan(0);
    expect(s.entries).toBeLessThan(40);
  });

  it("a new policy revision misses the cache", async () => {
    const { deps, calls } = fakeDeps({ cosign: pass("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    const p1 = await policy();
    const p2 = await policy({ cache: { positiveTTLSeconds: 301 } });
    expect(p2.revision).not.toBe(p1.revision);
    await engine.verify(subject(1), p1);
    expect((await engine.verify(subject(1), p1)).cached).toBe(true);
    const v2 = await engine.verify(subject(1), p2);
    expect(v2.cached).toBe(false);
    expect(v2.policy.revision).toBe(p2.revision);
    expect(calls.discover).toBe(2);
    expect(engine.cached(subject(1), p1)?.policy.revision).toBe(p1.revision);
  });

  it("one waiter's abort does not cancel the shared verification", async () => {
    const gate = deferred();
    const { deps, calls } = fakeDeps({ discover: () => gate.promise, cosign: pass("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    const p = await policy({ failurePolicy: "Closed" });
    const ac = new AbortController();
    const quitter = engine.verify(subject(1), p, { signal: ac.signal });
    const stayers = [engine.verify(subject(1), p), engine.verify(subject(1), p, { timeoutMs: 60_000 })];
    await new Promise((r) => setImmediate(r));
    ac.abort();
    const q = await quitter;
    expect(q).toMatchObject({ outcome: "failed", allowed: false, failure: { code: "CANCELLED" } });
    expect(calls.signals[0]!.aborted).toBe(false);
    gate.resolve();
    const rest = await Promise.all(stayers);
    expect(rest.map((v) => v.outcome)).toEqual(["verified", "verified"]);
    expect(calls.discover).toBe(1);
    expect(engine.stats().abandoned).toBe(1);
    // The abandoned caller's failure was not cached; the real verdict was.
    expect(engine.cached(subject(1), p)?.outcome).toBe("verified");
  });

  it("a caller's timeout answers per failurePolicy and the verification still lands in the cache", async () => {
    const gate = deferred();
    const { deps } = fakeDeps({ discover: () => gate.promise, cosign: pass("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    const open = await policy({ failurePolicy: "Open" });
    const v = await engine.verify(subject(1), open, { timeoutMs: 5 });
    expect(v).toMatchObject({ outcome: "failed", allowed: true, failure: { code: "TIMEOUT" } });
    expect(v.reasons[0]).toMatch(/could not verify .*caller's 5 ms budget/);
    gate.resolve();
    await new Promise((r) => setTimeout(r, 0));
    await new Promise((r) => setImmediate(r));
    expect(engine.cached(subject(1), open)?.outcome).toBe("verified");
  });

  it("the engine's own budget ends a hung verification as failed", async () => {
    const { deps } = fakeDeps({
      discover: () => new Promise(() => {}),
      cosign: error("cosign-key", "cosign"),
    });
    const engine = createEngineCore(deps, { verificationTimeoutMs: 20 });
    const v = await engine.verify(subject(1), await policy());
    expect(v).toMatchObject({ outcome: "failed", allowed: false, failure: { code: "TIMEOUT" } });
  });

  it("serves every hit of an entry as one frozen object marked cached, leaving the stored verdict alone", () => {
    let t = 1_000_000;
    const cache = new VerdictCache<Cacheable & { note: string }>({ now: () => t });
    const v = {
      outcome: "verified" as const,
      subject: { digest: digestN(3) },
      policy: { revision: "r1" },
      cached: false,
      note: "n",
    };
    expect(cache.set(v, { positiveTTLSeconds: 60, negativeTTLSeconds: 60 })).toBe(60);
    const a = cache.get(digestN(3), "r1");
    expect(a).toMatchObject({ cached: true, note: "n" });
    expect(cache.get(digestN(3), "r1")).toBe(a);
    expect(cache.peek(digestN(3), "r1")).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(v.cached).toBe(false); // the caller's object is not the one stored
    t += 61_000;
    expect(cache.get(digestN(3), "r1")).toBeUndefined(); // expiry still read on every access
  });
});
