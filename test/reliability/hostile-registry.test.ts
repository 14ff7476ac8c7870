// Hostile registries against the real engine.
// - docker-registry 2.8.3 with images signed by the real cosign and notation CLIs: a tag
//   moved after verification (verdicts are keyed by digest: the new digest is verified
//   anew), signatures transplanted from one image to another (cosign bundle and legacy
//   .sig, notation), for every transplant the receiving image is rejected.
// - the hostile in-test registry: 10,000 referrers, JSON nested 100,000 deep (referrers
//   response, manifest, signature envelope), invalid UTF-8 in manifests and envelopes.
//   Each gives a denial with a reason, in bounded time, with bounded registry requests.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CompiledPolicy, compilePolicy, createEngine } from "../../src/engine/index.js";
import type { Verdict } from "../../src/engine/types.js";
import {
  type HostileRegistry,
  invalidUtf8Json,
  nestedJson,
  startHostileRegistry,
} from "../support/hostile-registry.js";
import { crane, type PushedImage, pushBusyboxImage } from "../support/images.js";
import { type LocalRegistry, startRegistry } from "../support/registry.js";
import {
  type CosignKeys,
  cosignGenerateKeyPair,
  cosignSign,
  type NotationConfig,
  notationInit,
  notationSign,
} from "../support/signing.js";
import { DecisionTally, recordResult } from "./results.js";

const FILE = "test/reliability/hostile-registry.test.ts";
const ANSWER_LIMIT_MS = 15_000;

let reg: LocalRegistry;
let hostile: HostileRegistry;
let keys: CosignKeys;
let notation: NotationConfig;
let policy: CompiledPolicy;

beforeAll(async () => {
  [reg, hostile, keys, notation] = await Promise.all([
    startRegistry(),
    startHostileRegistry(),
    cosignGenerateKeyPair(),
    notationInit({ keyName: "hostile-release" }),
  ]);
  policy = await compilePolicy({
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name: "strict" },
    spec: {
      match: "AnyOf",
      verifiers: [
        {
          name: "notary",
          notation: {
            trustedIdentities: ["x509.subject: CN=hostile-release,O=Notary,L=Seattle,ST=WA,C=US"],
            trustStores: [{ type: "ca", name: "r", certificates: readFileSync(notation.certPath, "utf8") }],
          },
        },
        { name: "cosign", cosign: { keys: [{ name: "k", pem: keys.publicKeyPem }] } },
      ],
    },
  });
}, 300_000);

afterAll(async () => {
  await hostile?.close();
  await reg?.stop();
});

const subject = (i: { ref: string; digest: string }) => ({ reference: i.ref, digest: i.digest });
const tagOf = (digest: string) => digest.replace(":", "-");

async function timed(p: Promise<Verdict>): Promise<{ v: Verdict; ms: number }> {
  const t = Date.now();
  const v = await p;
  return { v, ms: Date.now() - t };
}

describe("hostile registry (docker-registry + real signatures)", () => {
  it("tag moved after verification: the new digest is verified anew, the old verdict stays keyed to its digest", async () => {
    const engine = createEngine();
    const tally = new DecisionTally(ANSWER_LIMIT_MS);
    const first = pushBusyboxImage(reg.host, "hostile/moving", "v1", { marker: "first" });
    await cosignSign({ ref: first.pinned, keyDir: keys });
    const a = await tally.run(() => engine.verify(subject(first), policy));
    expect(a).toMatchObject({ allowed: true, outcome: "verified" });
    // The tag now points to an unsigned image.
    const second = pushBusyboxImage(reg.host, "hostile/moving", "v1", { marker: "second" });
    expect(second.digest).not.toBe(first.digest);
    expect(second.ref).toBe(first.ref);
    const resolved = await engine.registry.resolve(second.ref);
    expect(resolved.digest).toBe(second.digest);
    const b = await tally.run(() =>
      engine.verify({ reference: second.ref, digest: resolved.digest }, policy),
    );
    expect(b).toMatchObject({ allowed: false, outcome: "rejected", cached: false });
    expect(b.subject.digest).toBe(second.digest);
    const again = await tally.run(() => engine.verify(subject(first), policy));
    expect(again).toMatchObject({ allowed: true, cached: true });
    engine.registry.close();
    expect(tally.counts()).toEqual({ crashes: 0, missedDeadlines: 0, undecided: 0 });
    recordResult({
      area: "hostile-registry",
      name: "tag moved after verification",
      path: "engine + docker-registry, cosign-signed then unsigned image under one tag",
      cases: tally.cases,
      outcome: "new digest verified anew and rejected; old digest's verdict served only for the old digest",
      ...tally.counts(),
      file: FILE,
    });
  });

  it("signatures transplanted between images are rejected (cosign bundle, cosign legacy .sig, notation)", async () => {
    const engine = createEngine();
    const cases: Array<{ name: string; donor: PushedImage; victim: PushedImage; copy: () => void }> = [];
    const mk = (n: string) => pushBusyboxImage(reg.host, "hostile/transplant", n, { marker: `t-${n}` });

    const bDonor = mk("bundle-donor");
    const bVictim = mk("bundle-victim");
    await cosignSign({ ref: bDonor.pinned, keyDir: keys });
    cases.push({
      name: "cosign bundle (referrers tag index copied)",
      donor: bDonor,
      victim: bVictim,
      copy: () =>
        crane([
          "cp",
          "--insecure",
          `${bDonor.repo}:${tagOf(bDonor.digest)}`,
          `${bVictim.repo}:${tagOf(bVictim.digest)}`,
        ]),
    });
    const lDonor = mk("legacy-donor");
    const lVictim = mk("legacy-victim");
    await cosignSign({ ref: lDonor.pinned, keyDir: keys, format: "legacy" });
    cases.push({
      name: "cosign legacy .sig tag copied",
      donor: lDonor,
      victim: lVictim,
      copy: () =>
        crane([
          "cp",
          "--insecure",
          `${lDonor.repo}:${tagOf(lDonor.digest)}.sig`,
          `${lVictim.repo}:${tagOf(lVictim.digest)}.sig`,
        ]),
    });
    const nDonor = mk("notation-donor");
    const nVictim = mk("notation-victim");
    await notationSign({ ref: nDonor.pinned, configDir: notation.configDir });
    cases.push({
      name: "notation (referrers tag index copied)",
      donor: nDonor,
      victim: nVictim,
      copy: () =>
        crane([
          "cp",
          "--insecure",
          `${nDonor.repo}:${tagOf(nDonor.digest)}`,
          `${nVictim.repo}:${tagOf(nVictim.digest)}`,
        ]),
    });

    const outcomes: string[] = [];
    const tally = new DecisionTally(ANSWER_LIMIT_MS);
    for (const c of cases) {
      expect((await tally.run(() => engine.verify(subject(c.donor), policy))).allowed, c.name).toBe(true);
      c.copy();
      const v = await tally.run(() => engine.verify(subject(c.victim), policy));
      expect(v.allowed, `${c.name}: ${v.reasons.join("; ")}`).toBe(false);
      expect(v.outcome).toBe("rejected");
      outcomes.push(`${c.name}: rejected`);
    }
    engine.registry.close();
    expect(tally.counts()).toEqual({ crashes: 0, missedDeadlines: 0, undecided: 0 });
    recordResult({
      area: "hostile-registry",
      name: "signature transplanted between images",
      path: "engine + docker-registry, signatures made by cosign 3.1.1 and notation 1.3.2, copied with crane",
      cases: tally.cases,
      outcome: `${outcomes.join("; ")} (donors still verified)`,
      ...tally.counts(),
      file: FILE,
    });
  });
});

describe("hostile registry (in-test, hostile answers)", () => {
  interface Scenario {
    name: string;
    setup(): { ref: string; digest: string };
  }
  const scenarios: Scenario[] = [
    {
      name: "10,000 referrers",
      setup() {
        const img = hostile.putImage("flood/app", "v1", "flood");
        hostile.floodReferrers("flood/app", img.digest, 10_000);
        return img;
      },
    },
    {
      name: "deeply nested JSON: referrers response (100,000 levels)",
      setup() {
        const img = hostile.putImage("nested/referrers", "v1", "nr");
        hostile.answer(
          `/v2/nested/referrers/referrers/${img.digest}`,
          nestedJson(100_000),
          "application/vnd.oci.image.index.v1+json",
        );
        return img;
      },
    },
    {
      name: "deeply nested JSON: signature envelopes (100,000 levels)",
      setup() {
        const img = hostile.putImage("nested/envelope", "v1", "ne");
        hostile.putSignature("nested/envelope", img, "notation", nestedJson(100_000, true));
        hostile.putSignature("nested/envelope", img, "cosign-bundle", nestedJson(100_000));
        return img;
      },
    },
    {
      name: "deeply nested JSON: signature manifest (100,000 levels)",
      setup() {
        const img = hostile.putImage("nested/manifest", "v1", "nm");
        const sig = hostile.putSignature("nested/manifest", img, "notation", "{}");
        hostile.answer(`/v2/nested/manifest/manifests/${sig}`, nestedJson(100_000, true));
        return img;
      },
    },
    {
      name: "invalid UTF-8 in manifests and envelopes",
      setup() {
        const img = hostile.putImage("utf8/app", "v1", "u8");
        hostile.putSignature(
          "utf8/app",
          img,
          "notation",
          invalidUtf8Json({
            payload: "@@BAD@@",
            protected: "@@BAD@@",
            header: { x5c: ["@@BAD@@"] },
            signature: "x",
          }),
        );
        hostile.putSignature(
          "utf8/app",
          img,
          "cosign-bundle",
          invalidUtf8Json({
            mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
            verificationMaterial: { publicKey: { hint: "@@BAD@@" } },
            dsseEnvelope: {
              payload: "@@BAD@@",
              payloadType: "application/vnd.in-toto+json",
              signatures: [{ sig: "@@BAD@@" }],
            },
          }),
        );
        // A signature manifest (digest-correct) whose annotations are not UTF-8.
        const env = hostile.putBlob("utf8/app", "not an envelope");
        hostile.putManifest(
          "utf8/app",
          invalidUtf8Json({
            schemaVersion: 2,
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            config: { mediaType: "application/vnd.cncf.notary.signature", digest: env, size: 15 },
            layers: [{ mediaType: "application/jose+json", digest: env, size: 15 }],
            subject: {
              mediaType: "application/vnd.oci.image.manifest.v1+json",
              digest: img.digest,
              size: img.size,
            },
            annotations: { "io.cncf.notary.x509chain.thumbprint#S256": "@@BAD@@" },
          }),
          { mediaType: "application/vnd.oci.image.manifest.v1+json" },
        );
        return img;
      },
    },
  ];

  for (const s of scenarios) {
    it(`${s.name}: denied with a reason, in bounded time and requests`, async () => {
      const engine = createEngine({ registry: { timeouts: { totalMs: 5000 } } });
      const img = s.setup();
      const before = hostile.requests.length;
      let crashes = 0;
      let res: { v: Verdict; ms: number } | undefined;
      try {
        res = await timed(engine.verify(subject(img), policy));
      } catch {
        crashes++;
      }
      const requests = hostile.requests.length - before;
      engine.registry.close();
      expect(crashes).toBe(0);
      expect(res!.v.allowed).toBe(false);
      expect(["rejected", "failed"]).toContain(res!.v.outcome);
      expect(res!.v.reasons[0]).toMatch(/^ImagePolicy strict /);
      expect(res!.ms).toBeLessThanOrEqual(ANSWER_LIMIT_MS);
      // Caps hold: discovery fetches a bounded number of artifacts whatever the registry lists.
      expect(requests).toBeLessThanOrEqual(engine.registry.limits.maxArtifacts * 3 + 30);
      // Written only once the assertions above passed.
      recordResult({
        area: "hostile-registry",
        name: s.name,
        path: "engine (notation + cosign verifiers, AnyOf) → hostile in-test registry",
        cases: 1,
        outcome: res
          ? `${res.v.outcome}, allowed=${res.v.allowed} in ${res.ms} ms with ${requests} registry requests: ${res.v.reasons[0]?.slice(0, 160)}`
          : "threw",
        crashes,
        missedDeadlines: res && res.ms > ANSWER_LIMIT_MS ? 1 : 0,
        undecided: res ? 0 : 1,
        file: FILE,
      });
    });
  }
});
