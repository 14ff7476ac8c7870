// The verdict cache holds signature results per digest × policy revision; everything that
// depends on the name is decided per request with the reference actually used. Each case
// first puts a verdict for one name into the cache, then asks for the same digest under
// another name.
import { describe, expect, it } from "vitest";
import type { RegoInput } from "../../src/engine/policy/model.js";
import { createEngineCore } from "../../src/engine/verify.js";
import { digestN, fail, fakeDeps, pass, policy } from "./policy/engine-fakes.js";

const D = digestN(7);
const GOVERNED = "127.0.0.1:5000/team/app:v1";
// Same registry content, another name: a second host name, another port, another repo.
const OTHER_HOST = `localhost:5000/team/app@${D}`;
const OTHER_REPO = "127.0.0.1:5000/elsewhere/app:v1";

describe("name-dependent decisions are made per request", () => {
  it("spec.images + unmatchedImages Deny: a cached pass for the governed name does not answer for another name", async () => {
    const { deps, calls } = fakeDeps({ cosign: pass("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    const p = await policy({ unmatchedImages: "Deny" });
    expect((await engine.verify({ reference: GOVERNED, digest: D }, p)).outcome).toBe("verified");
    for (const reference of [OTHER_HOST, OTHER_REPO]) {
      const c = engine.cached({ reference, digest: D }, p);
      expect(c).toMatchObject({ allowed: false, outcome: "rejected" });
      expect(c?.reasons[0]).toContain("not matched by spec.images");
      expect(c?.reasons[0]).toContain(reference.split("@")[0]);
      expect(await engine.verify({ reference, digest: D }, p)).toMatchObject({
        allowed: false,
        outcome: "rejected",
      });
    }
    // The governed name is still answered from the cache, under its own name.
    const again = engine.cached({ reference: "127.0.0.1:5000/team/app:other-tag", digest: D }, p);
    expect(again).toMatchObject({ allowed: true, outcome: "verified", cached: true });
    expect(again?.reasons[0]).toContain("127.0.0.1:5000/team/app:other-tag");
    expect(calls.discover).toBe(1);
  });

  it("a re-spelled host of the governed registry is governed, and gets the cached result", async () => {
    const { deps, calls } = fakeDeps({ cosign: fail("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    const p = await policy({ images: ["registry.example/team/**"], unmatchedImages: "Allow" });
    expect((await engine.verify({ reference: "registry.example/team/app:v1", digest: D }, p)).outcome).toBe(
      "rejected",
    );
    for (const reference of ["REGISTRY.example:443/team/app:v1", `Registry.Example/team/app:v2@${D}`]) {
      expect(engine.cached({ reference, digest: D }, p)).toMatchObject({
        allowed: false,
        outcome: "rejected",
      });
    }
    // A different registry really is ungoverned under unmatchedImages: Allow.
    expect(engine.cached({ reference: "registry.example:5000/team/app:v1", digest: D }, p)).toMatchObject({
      allowed: true,
      outcome: "ungoverned",
    });
    expect(calls.discover).toBe(1);
  });

  it("spec.exemptImages: exempt under one name, verified under another (both orders)", async () => {
    const { deps, calls } = fakeDeps({ cosign: fail("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    const p = await policy({ exemptImages: ["127.0.0.1:5000/team/base/**"] });
    const exempt = { reference: "127.0.0.1:5000/team/base/app:v1", digest: D };
    const plain = { reference: GOVERNED, digest: D };
    expect((await engine.verify(exempt, p)).outcome).toBe("exempt");
    expect(engine.cached(plain, p)).toBeUndefined(); // nothing cached for the signatures yet
    expect((await engine.verify(plain, p)).outcome).toBe("rejected");
    expect(engine.cached(plain, p)).toMatchObject({ outcome: "rejected" });
    expect(engine.cached({ ...exempt, reference: "127.0.0.1:5000/team/base/app:v2" }, p)).toMatchObject({
      allowed: true,
      outcome: "exempt",
    });
    expect(calls.discover).toBe(1);
  });

  it("Rego sees the reference actually used, also on a cache hit", async () => {
    const { deps, calls } = fakeDeps({ cosign: pass("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    const p = await policy({});
    const seen: string[] = [];
    const rego = {
      entrypoint: "test/allow",
      evaluate(input: RegoInput) {
        seen.push(input.subject.reference);
        const ok = !input.subject.reference.includes("/team/legacy");
        return { allow: ok, reasons: ok ? [] : ["legacy repositories are retired"] };
      },
    };
    const pr = { ...p, rego };
    expect(await engine.verify({ reference: GOVERNED, digest: D }, pr)).toMatchObject({ allowed: true });
    const legacy = { reference: "127.0.0.1:5000/team/legacy:v1", digest: D };
    const hit = engine.cached(legacy, pr);
    expect(hit).toMatchObject({ allowed: false, outcome: "rejected", cached: true });
    expect(hit?.reasons.join(" ")).toContain("legacy repositories are retired");
    expect((await engine.verify(legacy, pr)).allowed).toBe(false);
    expect((await engine.verify({ reference: GOVERNED, digest: D }, pr)).allowed).toBe(true);
    expect(seen).toEqual([GOVERNED, legacy.reference, legacy.reference, GOVERNED]);
    expect(calls.discover).toBe(1);
  });

  it("callers that join one shared verification each get their own name's answer", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const { deps, calls } = fakeDeps({ discover: () => held, cosign: pass("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    const p = await policy({ unmatchedImages: "Deny", images: ["127.0.0.1:5000/team/**"] });
    const a = engine.verify({ reference: GOVERNED, digest: D }, p);
    const b = engine.verify({ reference: "127.0.0.1:5000/team/other:v9", digest: D }, p);
    release();
    const [va, vb] = await Promise.all([a, b]);
    expect(calls.discover).toBe(1);
    expect(va.reasons[0]).toContain(GOVERNED);
    expect(vb.reasons[0]).toContain("127.0.0.1:5000/team/other:v9");
    expect(vb.subject.reference).toBe("127.0.0.1:5000/team/other:v9");
  });
});

describe("notation trust policy documents: the trust policy chosen by scope is part of the key", () => {
  // Scoped policy trusts the signer; the "*" policy skips verification of nothing (strict
  // with another store), so only the scoped repository passes.
  const doc = (scoped: string) => ({
    version: "1.0",
    trustPolicies: [
      {
        name: "team-app",
        registryScopes: [scoped],
        signatureVerification: { level: "strict" },
        trustStores: ["ca:ca1"],
        trustedIdentities: ["*"],
      },
      {
        name: "everything-else",
        registryScopes: ["*"],
        signatureVerification: { level: "strict" },
        trustStores: ["ca:ca1"],
        trustedIdentities: ["x509.subject: C=US, ST=WA, O=Nobody, CN=nobody"],
      },
    ],
  });
  const notationPolicy = async (scoped = "127.0.0.1:5000/team/app") => {
    const { cert } = await import("./policy/engine-fakes.js");
    return policy({
      images: ["127.0.0.1:5000/**", "registry.example/**"],
      verifiers: [
        {
          name: "notary",
          notation: {
            trustPolicy: doc(scoped),
            trustStores: [{ type: "ca", name: "ca1", certificates: cert }],
          },
        },
      ],
    });
  };
  // A scope-dependent fake: passes only where the scoped trust policy applies.
  const byScope = (scoped: string) => (s: { reference: string }) =>
    s.reference.startsWith(`${scoped}:`) || s.reference.startsWith(`${scoped}@`)
      ? pass("notary", "notation")({ reference: s.reference, digest: D })
      : fail("notary", "notation", "no trusted identity")({ reference: s.reference, digest: D });

  it("a pass under the scoped repository never answers for a repository under the * policy", async () => {
    const { deps, calls } = fakeDeps({ notation: (s) => byScope(GOVERNED.split(":v1")[0]!)(s) });
    const engine = createEngineCore(deps);
    const p = await notationPolicy();
    expect((await engine.verify({ reference: GOVERNED, digest: D }, p)).outcome).toBe("verified");
    // Same trust policy (another tag): shares the result.
    expect(engine.cached({ reference: "127.0.0.1:5000/team/app:v2", digest: D }, p)).toMatchObject({
      outcome: "verified",
      cached: true,
    });
    // Another repository falls under "*": no cached pass, its own verification, denied.
    const other = { reference: OTHER_REPO, digest: D };
    expect(engine.cached(other, p)).toBeUndefined();
    expect(await engine.verify(other, p)).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(calls.discover).toBe(2);
  });

  it("scopes are matched on canonical hosts: a re-spelled host does not fall through to *", async () => {
    const { selectPolicy } = await import("../../src/engine/notation/policy.js");
    const p = await notationPolicy("registry.example/team/app");
    const v = p.verifiers[0]!;
    if (v.kind !== "notation") throw new Error("expected a notation verifier");
    for (const ref of [
      "registry.example/team/app:v1",
      "REGISTRY.Example/team/app:v1",
      `registry.example:443/team/app@${D}`,
    ]) {
      expect(selectPolicy(v.notation.trustPolicies, ref)?.name).toBe("team-app");
    }
    expect(selectPolicy(v.notation.trustPolicies, "registry.example:5000/team/app:v1")?.name).toBe(
      "everything-else",
    );
  });
});
