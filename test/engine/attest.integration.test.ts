// Attestation policies end to end through the engine: a real docker-registry on loopback,
// attestations made by the real `cosign attest` 3.1.1 (key-based, bundle and legacy .att
// formats), the real registry client, discovery, DSSE verification and CEL conditions.
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderVerdict } from "../../src/cli/verify.js";
import { type CompiledPolicy, compilePolicy, createEngine } from "../../src/engine/index.js";
import { attestationPolicy, pushAttestedImages } from "../support/attestations.js";
import { type CosignKeys, cosignGenerateKeyPair } from "../support/signing.js";
import { type SigningFixture, startSigningFixture } from "../support/signing-fixture.js";

const BUILDER = "https://ci.acme.example/builder";
const DAY = 86_400_000;

let fx: SigningFixture;
let keys: CosignKeys;
let img: Awaited<ReturnType<typeof pushAttestedImages>>;
const scanAt = new Date(Date.now() - DAY); // "yesterday" for fresh scans

beforeAll(async () => {
  fx = await startSigningFixture();
  keys = fx.keys;
  img = await pushAttestedImages({
    registryHost: fx.reg.host,
    place: (n) => ["team/app", n],
    key: keys,
    rogue: await cosignGenerateKeyPair(path.join(fx.work, "rogue")),
    builder: BUILDER,
    scanAt,
    // The denial matrix runs on containerd (e2e/attest.test.ts) and, check by check, in
    // test/engine/attest/verify.test.ts; here: both formats, tenancy, report, expiry.
    only: ["bundle", "legacy"],
  });
}, 300_000);

afterAll(async () => {
  await fx?.stop();
});

function policy(builder = BUILDER, name = "team-a", ttl = 300): Promise<CompiledPolicy> {
  return compilePolicy(
    attestationPolicy(name, keys.publicKeyPem, builder, {
      images: [`${fx.reg.host}/team/**`],
      cache: { positiveTTLSeconds: ttl, negativeTTLSeconds: 30 },
    }),
  );
}

const subject = (n: "bundle" | "legacy") => ({ reference: img[n].ref, digest: img[n].digest });

describe("attestation policies against real cosign attestations", () => {
  it("allows provenance from the allowed builder and source, bundle and legacy formats", async () => {
    const engine = createEngine();
    const p = await policy();
    for (const n of ["bundle", "legacy"] as const) {
      const v = await engine.verify(subject(n), p);
      expect(v.allowed, v.reasons.join(" | ")).toBe(true);
      expect(v.outcome).toBe("verified");
      expect(v.attestations?.map((a) => [a.name, a.result, a.format, a.signer])).toEqual([
        ["provenance", "passed", n, "release"],
        ["scan", "passed", n, "release"],
      ]);
      // Attestation bundles are not mistaken for signatures.
      expect(v.verifiers.map((c) => c.result)).toEqual(["passed"]);
      // Fresh scan (1 day old, limit 7 days) but within a 300 s TTL nothing expires.
      expect(v.expiresAt).toBeUndefined();
    }
  });

  it("conditions see the signatures that verified the image", async () => {
    const scanFresh = attestationPolicy("x", "k", BUILDER).spec.conditions[0]!;
    const withSignatures = (expression: string) =>
      compilePolicy(
        attestationPolicy("team-sig", keys.publicKeyPem, BUILDER, {
          images: [`${fx.reg.host}/team/**`],
          conditions: [scanFresh, { expression, message: "signed by the release verifier" }],
        }),
      );
    const engine = createEngine();
    const ok = await engine.verify(
      subject("bundle"),
      await withSignatures(`signatures.exists(s, s.verifier == "release" && s.kind == "cosign")`),
    );
    expect(ok.allowed, ok.reasons.join(" | ")).toBe(true);
    const none = await engine.verify(subject("bundle"), await withSignatures("signatures.size() == 0"));
    expect(none).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(none.reasons.join(" ")).toContain("signed by the release verifier");
  });

  it("tenancy: two policies asking for different builders judge one image differently", async () => {
    const engine = createEngine();
    const a = await policy(BUILDER, "team-a");
    const b = await policy("https://ci.other.example/builder", "team-b");
    expect(a.revision).not.toBe(b.revision);
    expect((await engine.verify(subject("bundle"), a)).allowed).toBe(true);
    const vb = await engine.verify(subject("bundle"), b);
    expect(vb.allowed).toBe(false);
    expect(vb.reasons[0]).toContain('condition "built by https://ci.other.example/builder" is false');
    // The CLI report (tollgate verify) lists each attestation requirement.
    const text = renderVerdict(vb);
    expect(text).toMatch(/Attestations:\n\s+NAME\s+PREDICATE/);
    expect(text).toMatch(
      /provenance\s+https:\/\/slsa\.dev\/provenance\/v1\s+sha256:\S+\s+failed\s+-\s+condition "built by/,
    );
  });

  it("a cached allow expires when the scan ages out", async () => {
    // Clock: the scan (finished yesterday) turns 7 days old 6 days from now; start 1 h before.
    const ageOut = scanAt.getTime() + 7 * DAY;
    let t = ageOut - 3_600_000;
    const engine = createEngine({ now: () => new Date(t) });
    const p = await policy(BUILDER, "team-a", 86_400);
    const first = await engine.verify(subject("bundle"), p);
    expect(first.allowed, first.reasons.join(" | ")).toBe(true);
    const exp = Date.parse(first.expiresAt ?? "");
    expect(exp).toBeLessThanOrEqual(ageOut);
    expect(exp).toBeGreaterThan(ageOut - 2000);
    t += 1_800_000;
    expect(engine.cached(subject("bundle"), p)?.allowed).toBe(true);
    t = ageOut + 1000;
    expect(engine.cached(subject("bundle"), p)).toBeUndefined();
    const later = await engine.verify(subject("bundle"), p);
    expect(later.allowed).toBe(false);
    expect(later.cached).toBe(false);
    expect(later.reasons[0]).toContain("vulnerability scan is younger than 7 days");
  });
});
