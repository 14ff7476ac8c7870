// A cached signature result is judged per request (name-per-request.test.ts); when that
// judgement reads neither the clock nor the namespace, the verdict of the previous identical
// request (same cached result, same policy object, same reference) is served again, frozen.
import { describe, expect, it } from "vitest";
import type { RegoInput } from "../../src/engine/policy/model.js";
import { createEngineCore } from "../../src/engine/verify.js";
import { digestN, fakeDeps, pass, policy } from "./policy/engine-fakes.js";

const D = digestN(9);
const A = "127.0.0.1:5000/team/app:v1";
const B = "127.0.0.1:5000/team/app:v2";

describe("judging a cached result", () => {
  it("serves the same frozen verdict to repeated requests for one reference, and its own to another", async () => {
    const { deps, calls } = fakeDeps({ cosign: pass("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    const p = await policy({});
    expect((await engine.verify({ reference: A, digest: D }, p)).outcome).toBe("verified");
    const first = engine.cached({ reference: A, digest: D }, p);
    const second = engine.cached({ reference: A, digest: D }, p);
    expect(first).toMatchObject({ allowed: true, outcome: "verified", cached: true });
    expect(second).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    // A caller cannot change what the next one is served.
    expect(() => {
      (first as { allowed: boolean }).allowed = false;
    }).toThrow(TypeError);
    expect(engine.cached({ reference: A, digest: D }, p)?.allowed).toBe(true);
    // Another name gets a verdict under its own name, then the first name under its own again.
    const other = engine.cached({ reference: B, digest: D }, p);
    expect(other?.subject.reference).toBe(B);
    expect(other?.reasons[0]).toContain(B);
    const back = engine.cached({ reference: A, digest: D }, p);
    expect(back?.subject.reference).toBe(A);
    expect(back?.reasons[0]).toContain(A);
    // verify() on a hit takes the same path.
    expect(await engine.verify({ reference: A, digest: D }, p)).toBe(back);
    expect(calls.discover).toBe(1);
    expect(engine.stats().outcomes.verified).toBe(7); // every verdict served is counted
  });

  it("judges again for another policy object, even of the same revision", async () => {
    const { deps } = fakeDeps({ cosign: pass("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    const p = await policy({});
    // Same revision (so the same cached result), another object: its own judgement.
    const renamed = { ...p, name: "other-team" };
    await engine.verify({ reference: A, digest: D }, p);
    const mine = engine.cached({ reference: A, digest: D }, p);
    const theirs = engine.cached({ reference: A, digest: D }, renamed);
    expect(theirs).toMatchObject({ allowed: true, cached: true });
    expect(theirs).not.toBe(mine);
    expect(theirs?.reasons[0]).toContain("ImagePolicy other-team");
    expect(engine.cached({ reference: A, digest: D }, p)?.reasons[0]).toContain("ImagePolicy team ");
  });

  it("evaluates Rego on every request (its builtins may read the clock)", async () => {
    const { deps } = fakeDeps({ cosign: pass("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    let calls = 0;
    const p = {
      ...(await policy({})),
      rego: {
        entrypoint: "test/allow",
        evaluate(_input: RegoInput) {
          calls++;
          return { allow: calls < 3, reasons: calls < 3 ? [] : ["closed after two"] };
        },
      },
    };
    await engine.verify({ reference: A, digest: D }, p);
    expect(engine.cached({ reference: A, digest: D }, p)?.allowed).toBe(true);
    const third = engine.cached({ reference: A, digest: D }, p);
    expect(third).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(calls).toBe(3);
  });
});
