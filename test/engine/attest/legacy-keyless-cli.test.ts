// Legacy keyless `.att` attestations (made in cosign 2's format against the mock Sigstore:
// DSSE envelope layer, Fulcio certificate + chain and an intoto v0.0.2 Rekor bundle as
// annotations) pushed to a loopback docker-registry: our attestation verification (real
// discovery through the registry client) vs the real
// `cosign verify-attestation --trusted-root … --certificate-identity … --certificate-oidc-issuer …`
// (3.1.1) with the same trusted root, on pass / wrong identity / wrong issuer / tampered
// statement / no Rekor bundle / untrusted CA.
import crypto from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { discoverAttestations } from "../../../src/engine/attest/discover.js";
import { verifyAttestations } from "../../../src/engine/attest/verify.js";
import type { CosignConfig } from "../../../src/engine/policy/model.js";
import { createRegistryClient } from "../../../src/engine/registry/index.js";
import { type PushedImage, pushBusyboxImage } from "../../support/images.js";
import { type LocalRegistry, startRegistry } from "../../support/registry.js";
import {
  type AgreementCase,
  agreement,
  attachLegacyLayer,
  cosignOffline,
  identityCases,
} from "../cosign/legacy-push.js";
import {
  type LegacyAttestation,
  legacyKeylessAttestation,
  type MockSigstore,
  startMockSigstore,
} from "../cosign/mock-sigstore.js";

const SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";
const SLSA1 = "https://slsa.dev/provenance/v1";
const PREDICATE = { runDetails: { builder: { id: "https://ci.acme.example/builder" } } };

type Case = AgreementCase;

let dir: string;
let reg: LocalRegistry;
let sigstore: MockSigstore;
let rootFile: string;
const cases: Case[] = [];

/** The `.att` manifest cosign 2 writes: one DSSE envelope layer with annotations. */
function attachLegacyAtt(img: PushedImage, att: LegacyAttestation): Promise<void> {
  return attachLegacyLayer(reg, img, "att", {
    mediaType: "application/vnd.dsse.envelope.v1+json",
    bytes: att.envelope,
    annotations: att.annotations,
  });
}

function cosignVerifyAttestation(c: Case): Promise<{ ok: boolean; out: string }> {
  return cosignOffline(
    [
      "verify-attestation",
      "--trusted-root",
      rootFile,
      "--allow-http-registry",
      "--type",
      "slsaprovenance1",
      "--certificate-identity",
      c.identity,
      "--certificate-oidc-issuer",
      c.issuer,
      c.image.pinned,
    ],
    { dir, reg },
  );
}

async function ours(c: Case, cfg?: CosignConfig) {
  const client = createRegistryClient({});
  const source = await discoverAttestations(client, { reference: c.image.pinned, digest: c.image.digest });
  const out = await verifyAttestations(
    source,
    [{ name: "provenance", predicateType: SLSA1, verifier: "release", conditions: [] }],
    new Map([
      [
        "release",
        cfg ?? {
          keyless: {
            trustedRoot: sigstore.trustedRoot,
            identities: [{ subject: c.identity, issuer: c.issuer }],
          },
        },
      ],
    ]),
    { now: new Date(), baseVars: {}, horizonMs: 60_000 },
  );
  const r = out.results[0]!;
  return { ok: r.result === "passed", result: r };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-legacy-att-"));
  reg = await startRegistry(path.join(dir, "registry"));
  // Leaves start 2 s after the CA's root (cosign verifies the chain at the leaf's notBefore).
  sigstore = await startMockSigstore({ caBackdateMs: -2000 });
  const rogue = await startMockSigstore({ caBackdateMs: -2000 });
  await new Promise((r) => setTimeout(r, 2500));
  rootFile = path.join(dir, "trusted_root.json");
  writeFileSync(rootFile, JSON.stringify(sigstore.trustedRoot));
  const attested = async (
    name: string,
    o: { rekorBundle?: boolean; tamper?: boolean; untrusted?: boolean } = {},
  ) => {
    const img = pushBusyboxImage(reg.host, `legacy-att/${name}`, "v1", { marker: `legacy-att-${name}` });
    const att = await legacyKeylessAttestation(sigstore, {
      digest: img.digest,
      subject: SUBJECT,
      issuer: ISSUER,
      predicateType: SLSA1,
      predicate: PREDICATE,
      ...(o.rekorBundle === false ? { rekorBundle: false } : {}),
      ...(o.untrusted ? { ca: rogue.ca } : {}),
    });
    // Tampered: the statement's builder is changed after signing (envelope re-encoded).
    let envelope = att.envelope;
    if (o.tamper) {
      const env = JSON.parse(envelope.toString()) as { payload: string };
      env.payload = Buffer.from(
        Buffer.from(env.payload, "base64").toString().replace("ci.acme.example", "ci.evil.example"),
      ).toString("base64");
      envelope = Buffer.from(JSON.stringify(env));
    }
    await attachLegacyAtt(img, { ...att, envelope });
    return img;
  };
  const good = await attested("good");
  const tampered = await attested("tampered", { tamper: true });
  const noRekor = await attested("no-rekor", { rekorBundle: false });
  const untrusted = await attested("untrusted-ca", { untrusted: true });
  cases.push(
    ...identityCases(good, SUBJECT, ISSUER),
    { name: "tampered statement", image: tampered, identity: SUBJECT, issuer: ISSUER, expect: "fail" },
    { name: "missing Rekor bundle", image: noRekor, identity: SUBJECT, issuer: ISSUER, expect: "fail" },
    { name: "untrusted CA", image: untrusted, identity: SUBJECT, issuer: ISSUER, expect: "fail" },
  );
}, 120_000);

afterAll(async () => {
  await reg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("legacy keyless .att: ours vs `cosign verify-attestation` with the same trusted root", () => {
  it("agrees on pass / wrong identity / wrong issuer / tampered / missing Rekor bundle / untrusted CA", async () => {
    const problems = await agreement(cases, cosignVerifyAttestation, async (c) => {
      const mine = await ours(c);
      return { ok: mine.ok, why: mine.result.reason };
    });
    expect(problems).toEqual([]);
  }, 120_000);

  it("passes with the signer's identity, and names why otherwise", async () => {
    const good = cases.find((c) => c.name === "pass")!;
    expect((await ours(good)).result).toMatchObject({
      result: "passed",
      format: "legacy",
      signer: SUBJECT,
      issuer: ISSUER,
    });
    const wrong = await ours(cases.find((c) => c.name === "wrong identity")!);
    expect(wrong.result.reason).toContain("its keyless signature is not trusted by verifier release");
    expect(wrong.result.reason).toContain(`subject=${SUBJECT}`);
    const noRekor = await ours(cases.find((c) => c.name === "missing Rekor bundle")!);
    expect(noRekor.result.reason).toContain("no transparency log entry");
    // A verifier with keys only: the certificate is not trusted, the key does not match.
    const keyOnly = await ours(good, {
      keys: [
        {
          name: "release",
          pem: crypto
            .generateKeyPairSync("ec", { namedCurve: "P-256" })
            .publicKey.export({ type: "spki", format: "pem" })
            .toString(),
        },
      ],
    });
    expect(keyOnly.result.reason).toContain("is not signed by any key of verifier release (release)");
  });
});
