import { describe, expect, it } from "vitest";
import { EngineError } from "../../src/engine/errors.js";
import { createEngineCore } from "../../src/engine/verify.js";
import { digestN, error, fail, fakeDeps, pass, policy, subject } from "./policy/engine-fakes.js";

const D1 = digestN(1);

describe("engine.verify decisions", () => {
  it("exempt images are allowed without touching the registry", async () => {
    const { deps, calls } = fakeDeps({});
    const p = await policy({ exemptImages: ["127.0.0.1:5000/team/pause:*"] });
    const v = await createEngineCore(deps).verify(
      { reference: "127.0.0.1:5000/team/pause:3.10", digest: D1 },
      p,
    );
    expect(v).toMatchObject({
      allowed: true,
      outcome: "exempt",
      verifiers: [],
      policy: { name: "team", revision: p.revision },
    });
    expect(v.reasons[0]).toBe(
      `127.0.0.1:5000/team/pause:3.10@${D1} is exempt by ImagePolicy team (spec.exemptImages)`,
    );
    expect(calls.discover).toBe(0);
  });

  it("ungoverned images follow unmatchedImages", async () => {
    const { deps, calls } = fakeDeps({});
    const engine = createEngineCore(deps);
    const other = { reference: "127.0.0.1:5000/other/app:1", digest: D1 };
    const allow = await engine.verify(other, await policy({ unmatchedImages: "Allow" }));
    expect(allow).toMatchObject({ allowed: true, outcome: "ungoverned" });
    const deny = await engine.verify(other, await policy({ unmatchedImages: "Deny" }));
    expect(deny).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(deny.reasons[0]).toMatch(
      /^ImagePolicy team denies 127\.0\.0\.1:5000\/other\/app:1@sha256:0+1: not matched by spec\.images/,
    );
    expect(calls.discover).toBe(0);
  });

  it("AnyOf: one passing verifier is enough; the report keeps every check", async () => {
    const { deps, calls } = fakeDeps({
      notation: fail("notary", "notation"),
      cosign: pass("cosign-key", "cosign"),
    });
    const v = await createEngineCore(deps).verify(subject(1), await policy({ match: "AnyOf" }));
    expect(v).toMatchObject({ allowed: true, outcome: "verified", mode: "Enforce", cached: false });
    expect(v.verifiers.map((c) => [c.verifier, c.result])).toEqual([
      ["notary", "failed"],
      ["cosign-key", "passed"],
    ]);
    expect(v.reasons[0]).toBe(
      `ImagePolicy team allows 127.0.0.1:5000/team/app:v1@${D1}: verified by cosign-key: signature verified (signer CN=release)`,
    );
    expect(calls).toMatchObject({ discover: 1, notation: 1, cosign: 1 });
    expect(v.decidedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it("AllOf: any failing verifier denies, and the headline names it", async () => {
    const { deps } = fakeDeps({
      notation: fail("notary", "notation", "no Notary Project signature found"),
      cosign: pass("cosign-key", "cosign"),
    });
    const v = await createEngineCore(deps).verify(subject(1), await policy({ match: "AllOf" }));
    expect(v).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(v.reasons[0]).toBe(
      `ImagePolicy team denies 127.0.0.1:5000/team/app:v1@${D1}: verifier notary: no Notary Project signature found`,
    );
  });

  it("AnyOf with nothing passing lists every verifier's reason in one line", async () => {
    const { deps } = fakeDeps({});
    const v = await createEngineCore(deps).verify(subject(1), await policy({ match: "AnyOf" }));
    expect(v.reasons[0]).toBe(
      `ImagePolicy team denies 127.0.0.1:5000/team/app:v1@${D1}: no verifier accepted it (notary: signature does not verify; cosign-key: signature does not verify)`,
    );
    expect(v.reasons[0]).not.toContain("\n");
  });

  it("a verifier that returns no checks counts as 'no signature found'", async () => {
    const { deps } = fakeDeps({ notation: () => [], cosign: () => [] });
    const v = await createEngineCore(deps).verify(subject(1), await policy({ match: "AllOf" }));
    expect(v.outcome).toBe("rejected");
    expect(v.reasons[0]).toMatch(/verifier notary: no notation signature found/);
  });

  it("Audit mode allows what it would deny, and says so", async () => {
    const { deps } = fakeDeps({});
    const v = await createEngineCore(deps).verify(subject(1), await policy({ mode: "Audit" }));
    expect(v).toMatchObject({ allowed: true, auditOnly: true, outcome: "rejected", mode: "Audit" });
    expect(v.reasons.at(-1)).toBe("mode Audit: allowed, but ImagePolicy team would deny it");
    const ok = await createEngineCore(fakeDeps({ cosign: pass("cosign-key", "cosign") }).deps).verify(
      subject(1),
      await policy({ mode: "Audit" }),
    );
    expect(ok.auditOnly).toBeUndefined();
  });

  it("transient failures apply failurePolicy: Closed denies, Open allows", async () => {
    const down = () => {
      throw new EngineError("REGISTRY_UNAVAILABLE", "registry 127.0.0.1:5000 refused the connection");
    };
    for (const [fp, allowed] of [
      ["Closed", false],
      ["Open", true],
    ] as const) {
      const v = await createEngineCore(fakeDeps({ discover: down }).deps).verify(
        subject(1),
        await policy({ failurePolicy: fp }),
      );
      expect(v).toMatchObject({ outcome: "failed", allowed, failure: { code: "REGISTRY_UNAVAILABLE" } });
      expect(v.reasons[0]).toBe(
        `ImagePolicy team could not verify 127.0.0.1:5000/team/app:v1@${D1}: registry 127.0.0.1:5000 refused the connection`,
      );
      expect(v.reasons[1]).toMatch(new RegExp(`^failurePolicy ${fp}: ${allowed ? "allowed" : "denied"}`));
    }
  });

  it("checks that could not complete make AllOf fail (not reject) unless another verifier already failed", async () => {
    const indeterminate = fakeDeps({
      notation: error("notary", "notation"),
      cosign: pass("cosign-key", "cosign"),
    });
    const v = await createEngineCore(indeterminate.deps).verify(
      subject(1),
      await policy({ match: "AllOf", failurePolicy: "Open" }),
    );
    expect(v).toMatchObject({ outcome: "failed", allowed: true, failure: { code: "REGISTRY_UNAVAILABLE" } });
    const definitive = fakeDeps({
      notation: error("notary", "notation"),
      cosign: fail("cosign-key", "cosign"),
    });
    const v2 = await createEngineCore(definitive.deps).verify(
      subject(1),
      await policy({ match: "AllOf", failurePolicy: "Open" }),
    );
    expect(v2).toMatchObject({ outcome: "rejected", allowed: false });
    // AnyOf: a pass wins over an error.
    const anyOf = await createEngineCore(indeterminate.deps).verify(
      subject(1),
      await policy({ match: "AnyOf" }),
    );
    expect(anyOf.outcome).toBe("verified");
  });

  it("non-transient errors are verdicts, not failures (failurePolicy Open does not let them through)", async () => {
    const tampered = () => {
      throw new EngineError("DIGEST_MISMATCH", "manifest sha256:ab… does not match its digest");
    };
    const v = await createEngineCore(fakeDeps({ discover: tampered }).deps).verify(
      subject(1),
      await policy({ failurePolicy: "Open" }),
    );
    expect(v).toMatchObject({ outcome: "rejected", allowed: false });
    expect(v.reasons[0]).toMatch(/denies .*: manifest sha256:ab… does not match its digest/);
  });

  it("a verifier throwing a non-transient error is that verifier's failure", async () => {
    const { deps } = fakeDeps({
      notation: () => {
        throw new EngineError("INVALID_CONFIG", "trust store ca:x is empty");
      },
      cosign: pass("cosign-key", "cosign"),
    });
    const v = await createEngineCore(deps).verify(subject(1), await policy({ match: "AnyOf" }));
    expect(v.outcome).toBe("verified");
    expect(v.verifiers[0]).toMatchObject({
      verifier: "notary",
      result: "failed",
      reason: "trust store ca:x is empty",
    });
  });

  it("asks discovery only for the artifact kinds the policy's verifiers use", async () => {
    const kinds: unknown[] = [];
    const { deps } = fakeDeps({ cosign: pass("c", "cosign") });
    const discover = deps.discover;
    deps.discover = (s, o) => {
      kinds.push(o.kinds);
      return discover(s, o);
    };
    await createEngineCore(deps).verify(
      subject(1),
      await policy({
        verifiers: [
          {
            name: "c",
            cosign: { keys: [{ pem: (await import("./policy/engine-fakes.js")).key.publicPem }] },
          },
        ],
      }),
    );
    expect(kinds).toEqual([["cosign-bundle", "cosign-artifact-sig", "cosign-simplesigning"]]);
  });

  it("matches patterns against the normalised reference, whatever the caller passed", async () => {
    const { deps, calls } = fakeDeps({});
    const p = await policy({ images: ["docker.io/acme/**"], unmatchedImages: "Allow" });
    const v = await createEngineCore(deps).verify({ reference: "acme/app:1", digest: D1 }, p);
    expect(v.outcome).toBe("rejected");
    expect(calls.discover).toBe(1);
    const exempt = await policy({ images: ["**"], exemptImages: ["docker.io/library/busybox"] });
    expect((await createEngineCore(deps).verify({ reference: "busybox", digest: D1 }, exempt)).outcome).toBe(
      "exempt",
    );
  });

  it("rejects malformed subjects with a typed error", async () => {
    const engine = createEngineCore(fakeDeps({}).deps);
    const p = await policy();
    await expect(engine.verify({ reference: "x", digest: "sha256:zz" }, p)).rejects.toMatchObject({
      code: "INVALID_REFERENCE",
    });
    await expect(engine.verify({ reference: "", digest: D1 }, p)).rejects.toMatchObject({
      code: "INVALID_REFERENCE",
    });
  });

  it("a cached verdict carries the caller's reference, cached: true and the original decision time", async () => {
    const { deps } = fakeDeps({ cosign: pass("cosign-key", "cosign") });
    const engine = createEngineCore(deps);
    const p = await policy();
    const first = await engine.verify(subject(1), p);
    const second = await engine.verify({ reference: "127.0.0.1:5000/team/app:latest", digest: D1 }, p);
    expect(second).toMatchObject({
      cached: true,
      allowed: true,
      decidedAt: first.decidedAt,
      subject: { reference: "127.0.0.1:5000/team/app:latest", digest: D1 },
    });
    expect(engine.stats()).toMatchObject({ hits: 1, verifications: 1, outcomes: { verified: 2 } });
  });
});

describe("a caller-supplied subject descriptor", () => {
  it("a denial reached with a wrong-size descriptor is not cached against the digest; the right one verifies", async () => {
    const SIZE = 1234;
    const { deps, calls } = fakeDeps({
      // Like notation's targetArtifact check: the signature names the real size.
      notation: (s) =>
        s.descriptor && s.descriptor.size !== SIZE
          ? fail("notary", "notation", `signature is for ${SIZE} bytes, not ${s.descriptor.size}`)(s)
          : pass("notary", "notation")(s),
    });
    const engine = createEngineCore(deps);
    const p = await policy({ match: "AnyOf" });
    const desc = (size: number) => ({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: D1,
      size,
    });
    const bad = await engine.verify({ ...subject(1), descriptor: desc(1) }, p);
    expect(bad).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(engine.cached(subject(1), p)).toBeUndefined();
    const good = await engine.verify({ ...subject(1), descriptor: desc(SIZE) }, p);
    expect(good).toMatchObject({ allowed: true, cached: false });
    expect(calls.discover).toBe(2);
    // A pass is remembered (the descriptor matched what was signed).
    expect(engine.cached(subject(1), p)).toMatchObject({ allowed: true });
  });
});
