// Bounds on verification work (src/engine/limits.ts): concurrency overall and per registry,
// a bounded queue with a wait limit, and bytes held by running verifications.
import { describe, expect, it } from "vitest";
import { isEngineError } from "../../src/engine/errors.js";
import { byteAccount, VerificationLimits } from "../../src/engine/limits.js";

function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => {
    open = r;
  });
  return { p, open };
}
const tick = () => new Promise((r) => setTimeout(r, 5));

describe("VerificationLimits", () => {
  it("runs at most maxConcurrent overall and maxConcurrentPerRegistry per host; others queue in order", async () => {
    const l = new VerificationLimits({ maxConcurrent: 3, maxConcurrentPerRegistry: 2 });
    const g = gate();
    const started: string[] = [];
    const job = (reg: string, name: string) =>
      l.run(reg, async () => {
        started.push(name);
        await g.p;
        return name;
      });
    const all = [
      job("evil", "e1"),
      job("evil", "e2"),
      job("evil", "e3"),
      job("good", "g1"),
      job("good", "g2"),
    ];
    await tick();
    // evil is at its own limit; good is not blocked behind e3.
    expect(started).toEqual(["e1", "e2", "g1"]);
    expect(l.stats()).toMatchObject({ running: 3, queued: 2 });
    g.open();
    expect(await Promise.all(all)).toEqual(["e1", "e2", "e3", "g1", "g2"]);
    expect(started.sort()).toEqual(["e1", "e2", "e3", "g1", "g2"]);
    expect(l.stats()).toMatchObject({ running: 0, queued: 0, bytes: 0 });
  });

  it("a full queue and a long wait are refused with CAPACITY (the caller's failure policy answers)", async () => {
    const l = new VerificationLimits({
      maxConcurrent: 1,
      maxConcurrentPerRegistry: 1,
      maxQueued: 1,
      queueTimeoutMs: 50,
    });
    const g = gate();
    const first = l.run("r", () => g.p);
    const queued = l.run("r", async () => "late");
    const refused = await l.run("r", async () => "never").catch((e: unknown) => e);
    expect(isEngineError(refused) && refused.code).toBe("CAPACITY");
    expect(String((refused as Error).message)).toMatch(/queue is full/);
    const timedOut = await queued.catch((e: unknown) => e);
    expect(isEngineError(timedOut) && timedOut.code).toBe("CAPACITY");
    expect(String((timedOut as Error).message)).toMatch(/waited 50 ms/);
    g.open();
    await first;
    expect(l.stats()).toMatchObject({ running: 0, queued: 0, refused: 2 });
  });

  it("charges bytes to the running verification, overall and per registry, and frees them when it ends", async () => {
    const l = new VerificationLimits({ maxBytes: 1000, maxBytesPerRegistry: 600 });
    const g = gate();
    const holder = l.run("evil", async () => {
      byteAccount()!.charge(500, "manifest");
      await g.p;
    });
    await tick();
    expect(l.stats().bytes).toBe(500);
    const perReg = await l
      .run("evil", async () => byteAccount()!.charge(200, "sig"))
      .catch((e: unknown) => e);
    expect(isEngineError(perReg) && perReg.code).toBe("CAPACITY");
    expect((perReg as Error).message).toMatch(/against evil already hold 500 bytes/);
    await l.run("good", async () => byteAccount()!.charge(400, "ok"));
    const overall = await l
      .run("good", async () => {
        byteAccount()!.charge(450, "ok");
        byteAccount()!.charge(100, "too much");
      })
      .catch((e: unknown) => e);
    expect((overall as Error).message).toMatch(/too much: the agent already holds 950 bytes/);
    g.open();
    await holder;
    expect(l.stats().bytes).toBe(0);
    expect(byteAccount()).toBeUndefined();
  });
});

describe("engine within the bounds", () => {
  it("a verification refused for capacity is a failed verdict (code CAPACITY) and is not cached", async () => {
    const { createEngineCore } = await import("../../src/engine/verify.js");
    const { fakeDeps, pass, policy, subject } = await import("./policy/engine-fakes.js");
    const g = gate();
    const { deps, calls } = fakeDeps({
      discover: () => g.p,
      cosign: pass("cosign-key", "cosign"),
      notation: pass("notary", "notation"),
    });
    const limits = new VerificationLimits({ maxConcurrent: 1, maxConcurrentPerRegistry: 1, maxQueued: 0 });
    const engine = createEngineCore(deps, { limits });
    const p = await policy({ match: "AnyOf" });
    const first = engine.verify(subject(1), p);
    const refused = await engine.verify(subject(2), p);
    expect(refused).toMatchObject({ allowed: false, outcome: "failed", failure: { code: "CAPACITY" } });
    expect(engine.cached(subject(2), p)).toBeUndefined();
    g.open();
    expect(await first).toMatchObject({ allowed: true });
    // Capacity back: the same digest verifies now.
    expect(await engine.verify(subject(2), p)).toMatchObject({ allowed: true });
    expect(calls.discover).toBe(2);
  });
});
