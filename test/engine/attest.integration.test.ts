// Attestation policies end to end through the engine: a real docker-registry on loopback,
// attestations made by the real `cosign attest` 3.1.1 (key-based, bundle and legacy .att
// formats), the real registry client, discovery, DSSE verification and CEL conditions.
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderVerdict } from "../../src/cli/verify.js";
import { type CompiledPolicy, compilePolicy, createEngine } from "../../src/engine/index.js";
import { crane, type PushedImage, pushBusyboxImage } from "../support/images.js";
import type { LocalRegistry } from "../support/registry.js";
import { type CosignKeys, cosignAttest, cosignGenerateKeyPair, cosignSign } from "../support/signing.js";
import { type SigningFixture, startSigningFixture } from "../support/signing-fixture.js";

const BUILDER = "https://ci.acme.example/builder";
const SOURCE = "git+https://git.acme.example/app@refs/heads/main";
const DAY = 86_400_000;

let fx: SigningFixture;
let reg: LocalRegistry;
let keys: CosignKeys;
let rogue: CosignKeys;
const img: Record<string, PushedImage> = {};
const scanAt = new Date(Date.now() - DAY); // "yesterday" for fresh scans

function provenance(builder: string, source = SOURCE) {
  return {
    buildDefinition: { buildType: "https://acme.example/build@v1", externalParameters: { source } },
    runDetails: { builder: { id: builder } },
  };
}

function vuln(finished: Date, critical = 0) {
  return {
    invocation: { uri: "https://ci.acme.example/scan" },
    scanner: { uri: "pkg:github/aquasecurity/trivy@0.50.0", version: "0.50.0", result: { critical } },
    metadata: { scanStartedOn: finished.toISOString(), scanFinishedOn: finished.toISOString() },
  };
}

beforeAll(async () => {
  fx = await startSigningFixture();
  ({ reg, keys } = fx);
  rogue = await cosignGenerateKeyPair(path.join(fx.work, "rogue"));
  const names = ["bundle", "legacy", "otherbuilder", "missing", "transplant", "untrusted", "oldscan"];
  for (const n of names) img[n] = pushBusyboxImage(reg.host, "team/app", n, { marker: n });
  const at = (n: string) => img[n]!.pinned;
  // Sequential per subject: cosign rewrites the shared referrers tag index.
  for (const n of names) await cosignSign({ ref: at(n), keyDir: keys });
  await cosignAttest({
    ref: at("bundle"),
    keyDir: keys,
    type: "slsaprovenance1",
    predicate: provenance(BUILDER),
  });
  await cosignAttest({ ref: at("bundle"), keyDir: keys, type: "vuln", predicate: vuln(scanAt) });
  await cosignAttest({
    ref: at("legacy"),
    keyDir: keys,
    type: "slsaprovenance1",
    predicate: provenance(BUILDER),
    format: "legacy",
  });
  await cosignAttest({
    ref: at("legacy"),
    keyDir: keys,
    type: "vuln",
    predicate: vuln(scanAt),
    format: "legacy",
  });
  await cosignAttest({
    ref: at("otherbuilder"),
    keyDir: keys,
    type: "slsaprovenance1",
    predicate: provenance("https://evil.example/builder"),
  });
  await cosignAttest({ ref: at("otherbuilder"), keyDir: keys, type: "vuln", predicate: vuln(scanAt) });
  await cosignAttest({ ref: at("missing"), keyDir: keys, type: "vuln", predicate: vuln(scanAt) });
  // Transplant: the legacy image's whole .att manifest (statements naming its digest) under
  // this image's .att tag.
  const tag = (d: string) => `${d.replace(":", "-")}.att`;
  crane([
    "copy",
    "--insecure",
    `${img.legacy!.repo}:${tag(img.legacy!.digest)}`,
    `${img.transplant!.repo}:${tag(img.transplant!.digest)}`,
  ]);
  await cosignAttest({
    ref: at("untrusted"),
    keyDir: rogue,
    type: "slsaprovenance1",
    predicate: provenance(BUILDER),
  });
  await cosignAttest({ ref: at("untrusted"), keyDir: keys, type: "vuln", predicate: vuln(scanAt) });
  await cosignAttest({
    ref: at("oldscan"),
    keyDir: keys,
    type: "slsaprovenance1",
    predicate: provenance(BUILDER),
  });
  await cosignAttest({
    ref: at("oldscan"),
    keyDir: keys,
    type: "vuln",
    predicate: vuln(new Date(Date.now() - 30 * DAY)),
  });
}, 300_000);

afterAll(async () => {
  await fx?.stop();
});

function policy(builder = BUILDER, name = "team-a", ttl = 300): Promise<CompiledPolicy> {
  return compilePolicy({
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name },
    spec: {
      images: [`${reg.host}/team/**`],
      cache: { positiveTTLSeconds: ttl, negativeTTLSeconds: 30 },
      verifiers: [{ name: "release", cosign: { keys: [{ name: "release", pem: keys.publicKeyPem }] } }],
      attestations: [
        {
          name: "provenance",
          predicateType: "slsaprovenance1",
          verifier: "release",
          conditions: [
            { expression: `predicate.runDetails.builder.id == "${builder}"`, message: `built by ${builder}` },
            {
              expression: `predicate.buildDefinition.externalParameters.source.startsWith("git+https://git.acme.example/")`,
              message: "built from git.acme.example",
            },
          ],
        },
        {
          name: "scan",
          predicateType: "vuln",
          verifier: "release",
          conditions: [
            { expression: "predicate.scanner.result.critical == 0", message: "no critical vulnerabilities" },
          ],
        },
      ],
      conditions: [
        {
          expression: `now - timestamp(attestations.scan.predicate.metadata.scanFinishedOn) < duration("168h")`,
          message: "vulnerability scan is younger than 7 days",
        },
      ],
    },
  });
}

const subject = (n: string) => ({ reference: img[n]!.ref, digest: img[n]!.digest });

describe("attestation policies against real cosign attestations", () => {
  it("allows provenance from the allowed builder and source, bundle and legacy formats", async () => {
    const engine = createEngine();
    const p = await policy();
    for (const n of ["bundle", "legacy"]) {
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

  it.each([
    [
      "otherbuilder",
      `attestation provenance (https://slsa.dev/provenance/v1): condition "built by ${BUILDER}" is false`,
    ],
    [
      "missing",
      "attestation provenance (https://slsa.dev/provenance/v1): no https://slsa.dev/provenance/v1 attestation found",
    ],
    [
      "transplant",
      "attestation provenance (https://slsa.dev/provenance/v1): the signed statement names sha256:",
    ],
    ["untrusted", "attestation provenance (https://slsa.dev/provenance/v1): a bundle attestation (sha256:"],
    ["oldscan", 'spec.conditions[0]: condition "vulnerability scan is younger than 7 days" is false'],
  ])("denies %s with its reason in one line", async (n, reason) => {
    const engine = createEngine();
    const v = await engine.verify(subject(n), await policy());
    expect(v.allowed).toBe(false);
    expect(v.outcome).toBe("rejected");
    expect(v.reasons[0]).toContain(reason);
    expect(v.reasons[0]).not.toContain("\n");
    if (n === "untrusted")
      expect(v.reasons[0]).toContain("is not signed by any key of verifier release (release)");
    if (n === "transplant") expect(v.reasons[0]).toContain(`not ${img.transplant!.digest}`);
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
    expect(engine.cached(img.bundle!.digest, p)?.allowed).toBe(true);
    t = ageOut + 1000;
    expect(engine.cached(img.bundle!.digest, p)).toBeUndefined();
    const later = await engine.verify(subject("bundle"), p);
    expect(later.allowed).toBe(false);
    expect(later.cached).toBe(false);
    expect(later.reasons[0]).toContain("vulnerability scan is younger than 7 days");
  });
});
