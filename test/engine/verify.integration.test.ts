// The engine end to end against the real docker-registry 2.8.3 on loopback, with images
// signed by the real notation 1.3.2 and cosign 3.1.1 CLIs (offline), the real registry
// client, discovery, Notary Project and cosign verifiers, and the real Rego module.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CompiledPolicy, compilePolicy, createEngine } from "../../src/engine/index.js";
import { type PushedImage, pushBusyboxImage } from "../support/images.js";
import type { LocalRegistry } from "../support/registry.js";
import { type CosignKeys, cosignSign, type NotationConfig, notationSign } from "../support/signing.js";
import { type SigningFixture, startSigningFixture } from "../support/signing-fixture.js";

let fx: SigningFixture;
let reg: LocalRegistry;
let notation: NotationConfig;
let keys: CosignKeys;
let both: PushedImage;
let notaryOnly: PushedImage;
let cosignOnly: PushedImage;
let unsigned: PushedImage;
let neverSeen: PushedImage;
let other: PushedImage;
let wasm: Buffer;

beforeAll(async () => {
  fx = await startSigningFixture({ notationKey: "tollgate-release" });
  ({ reg, notation, keys } = fx);
  both = pushBusyboxImage(reg.host, "team/app", "both", { marker: "both" });
  notaryOnly = pushBusyboxImage(reg.host, "team/app", "notary", { marker: "notary" });
  cosignOnly = pushBusyboxImage(reg.host, "team/app", "cosign", { marker: "cosign" });
  unsigned = pushBusyboxImage(reg.host, "team/app", "unsigned", { marker: "unsigned" });
  neverSeen = pushBusyboxImage(reg.host, "team/app", "never", { marker: "never" });
  other = pushBusyboxImage(reg.host, "other/app", "v1", { marker: "other" });
  // One subject at a time: both tools rewrite the shared referrers tag index.
  await notationSign({ ref: both.pinned, configDir: notation.configDir });
  await cosignSign({ ref: both.pinned, keyDir: keys });
  await notationSign({ ref: notaryOnly.pinned, configDir: notation.configDir, format: "cose" });
  await cosignSign({ ref: cosignOnly.pinned, keyDir: keys, format: "legacy" });
  await notationSign({ ref: neverSeen.pinned, configDir: notation.configDir });
  await cosignSign({ ref: neverSeen.pinned, keyDir: keys });

  const out = path.join(fx.work, "signer.wasm");
  execFileSync("wat2wasm", [path.resolve(import.meta.dirname, "../fixtures/rego/signer.wat"), "-o", out]);
  wasm = readFileSync(out);
}, 300_000);

afterAll(async () => {
  await fx?.stop();
});

const subjectOf = (img: PushedImage) => ({ reference: img.ref, digest: img.digest });

function policy(spec: Record<string, unknown>, name = "team-a"): Promise<CompiledPolicy> {
  return compilePolicy({
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name },
    spec: {
      images: [`${reg.host}/team/**`],
      exemptImages: [`${reg.host}/team/pause:*`],
      verifiers: [
        {
          name: "notary",
          notation: {
            trustedIdentities: [`x509.subject: CN=tollgate-release,O=Notary,L=Seattle,ST=WA,C=US`],
            trustStores: [
              { type: "ca", name: "release", certificates: readFileSync(notation.certPath, "utf8") },
            ],
          },
        },
        { name: "cosign-key", cosign: { keys: [{ name: "release", pem: keys.publicKeyPem }] } },
      ],
      ...spec,
    },
  });
}

describe("engine against a real registry with real signatures", () => {
  it("AllOf: a notation- and cosign-signed image is allowed, with one report line per verifier", async () => {
    const engine = createEngine();
    const p = await policy({ match: "AllOf" });
    const v = await engine.verify(subjectOf(both), p);
    expect(v, JSON.stringify(v, null, 2)).toMatchObject({
      allowed: true,
      outcome: "verified",
      cached: false,
    });
    const passed = v.verifiers.filter((c) => c.result === "passed");
    expect(passed.map((c) => c.verifier).sort()).toEqual(["cosign-key", "notary"]);
    for (const c of passed) expect(c.artifactDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(passed.find((c) => c.verifier === "notary")?.signer).toMatch(/CN=tollgate-release/);
    expect(v.reasons[0]).toMatch(
      new RegExp(`^ImagePolicy team-a allows ${both.ref}@${both.digest}: verified by `),
    );
    expect((await engine.verify(subjectOf(both), p)).cached).toBe(true);
    expect(engine.stats().verifications).toBe(1);
  });

  it("AllOf denies an image that only one verifier accepts; AnyOf allows it", async () => {
    const engine = createEngine();
    const allOf = await engine.verify(subjectOf(notaryOnly), await policy({ match: "AllOf" }));
    expect(allOf).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(allOf.reasons[0]).toMatch(
      new RegExp(`^ImagePolicy team-a denies ${notaryOnly.ref}@${notaryOnly.digest}: verifier cosign-key: `),
    );
    const anyOf = await policy({ match: "AnyOf" });
    expect((await engine.verify(subjectOf(notaryOnly), anyOf)).allowed).toBe(true);
    // Legacy (.sig tag) cosign signature, no notation signature.
    const c = await engine.verify(subjectOf(cosignOnly), anyOf);
    expect(c, JSON.stringify(c, null, 2)).toMatchObject({ allowed: true, outcome: "verified" });
    expect(c.verifiers.find((x) => x.verifier === "cosign-key")?.result).toBe("passed");
  });

  it("denies an unsigned image and says why in one line", async () => {
    const v = await createEngine().verify(subjectOf(unsigned), await policy({ match: "AnyOf" }));
    expect(v).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(v.reasons[0]).toMatch(
      new RegExp(
        `^ImagePolicy team-a denies ${unsigned.ref}@${unsigned.digest}: no verifier accepted it \\(notary: .+; cosign-key: .+\\)$`,
      ),
    );
  });

  it("ungoverned and exempt images never reach the registry", async () => {
    const engine = createEngine();
    const allowUnmatched = await policy({ unmatchedImages: "Allow" });
    expect(await engine.verify(subjectOf(other), allowUnmatched)).toMatchObject({
      allowed: true,
      outcome: "ungoverned",
    });
    expect(await engine.verify(subjectOf(other), await policy({}))).toMatchObject({
      allowed: false,
      outcome: "rejected",
    });
    const pause = { reference: `${reg.host}/team/pause:3.10`, digest: unsigned.digest };
    expect(await engine.verify(pause, allowUnmatched)).toMatchObject({ allowed: true, outcome: "exempt" });
    expect(engine.registry.stats).toMatchObject({ requests: 0 });
  });

  it("Audit mode lets an unsigned image through and records the would-be denial", async () => {
    const v = await createEngine().verify(subjectOf(unsigned), await policy({ mode: "Audit" }));
    expect(v).toMatchObject({ allowed: true, auditOnly: true, outcome: "rejected", mode: "Audit" });
  });

  it("Rego over the real verification report: only the required signer gets in", async () => {
    const engine = createEngine();
    const rego = (requiredSigner: string) =>
      policy({
        match: "AnyOf",
        rego: { module: wasm.toString("base64"), entrypoint: "tollgate/decision", data: { requiredSigner } },
      });
    const ok = await engine.verify(subjectOf(notaryOnly), await rego("CN=tollgate-release"));
    expect(ok).toMatchObject({ allowed: true, outcome: "verified" });
    const no = await engine.verify(subjectOf(notaryOnly), await rego("CN=someone-else"));
    expect(no).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(no.reasons[0]).toMatch(/no verifier passed with a signer matching data\.requiredSigner$/);
  });

  it("registry stopped: failurePolicy Closed denies, Open allows, cached verdicts still answer", async () => {
    const engine = createEngine({ registry: { timeouts: { connectMs: 2000, totalMs: 10_000 } } });
    const closed = await policy({ failurePolicy: "Closed" });
    const open = await policy({ failurePolicy: "Open" });
    const warm = await engine.verify(subjectOf(both), closed);
    expect(warm.allowed).toBe(true);

    await reg.stop();

    const c = await engine.verify(subjectOf(neverSeen), closed);
    expect(c, JSON.stringify(c, null, 2)).toMatchObject({ outcome: "failed", allowed: false });
    expect(c.failure?.code).toMatch(/^REGISTRY_/);
    expect(c.reasons[0]).toMatch(
      new RegExp(`^ImagePolicy team-a could not verify ${neverSeen.ref}@${neverSeen.digest}: `),
    );
    const o = await engine.verify(subjectOf(neverSeen), open);
    expect(o).toMatchObject({ outcome: "failed", allowed: true });
    // The verdict from before the outage is still served (by digest × revision).
    expect(await engine.verify(subjectOf(both), closed)).toMatchObject({ allowed: true, cached: true });
  });
});
