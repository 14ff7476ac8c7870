// Legacy keyless `.sig` signatures (made byte for byte in cosign 2's format against the mock
// Sigstore) pushed to a loopback docker-registry: our verdict vs the real
// `cosign verify --trusted-root … --certificate-identity … --certificate-oidc-issuer …` (3.1.1)
// given the same trusted root, on pass / wrong identity / wrong issuer / tampered / no Rekor bundle.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyCosign } from "../../../src/engine/cosign/index.js";
import type { SignatureCheck } from "../../../src/engine/types.js";
import { type PushedImage, pushBusyboxImage } from "../../support/images.js";
import { type LocalRegistry, startRegistry } from "../../support/registry.js";
import {
  type AgreementCase,
  agreement,
  attachLegacyLayer,
  cosignOffline,
  identityCases,
} from "./legacy-push.js";
import {
  type LegacySignature,
  legacyKeylessSignature,
  type MockSigstore,
  startMockSigstore,
} from "./mock-sigstore.js";
import { registrySource } from "./registry-source.js";

const SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";

type Case = AgreementCase;

let dir: string;
let reg: LocalRegistry;
let sigstore: MockSigstore;
let rootFile: string;
const cases: Case[] = [];

/** The `.sig` manifest cosign 2 writes: one simple-signing layer with annotations. */
function attachLegacy(img: PushedImage, sig: LegacySignature): Promise<void> {
  return attachLegacyLayer(reg, img, "sig", {
    mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
    bytes: sig.payload,
    annotations: sig.annotations,
  });
}

function cosignVerify(c: Case): Promise<{ ok: boolean; out: string }> {
  return cosignOffline(
    [
      "verify",
      "--trusted-root",
      rootFile,
      "--allow-http-registry",
      "--certificate-identity",
      c.identity,
      "--certificate-oidc-issuer",
      c.issuer,
      c.image.pinned,
    ],
    { dir, reg },
  );
}

async function ours(c: Case): Promise<{ ok: boolean; checks: SignatureCheck[] }> {
  const repo = c.image.repo.slice(reg.host.length + 1);
  const src = await registrySource(reg.url, reg.host, repo, c.image.digest);
  const checks = await verifyCosign(
    src,
    {
      keyless: {
        trustedRoot: sigstore.trustedRoot,
        identities: [{ subject: c.identity, issuer: c.issuer }],
      },
    },
    { verifierName: "legacy" },
  );
  return { ok: checks.some((k) => k.result === "passed"), checks };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-legacy-cli-"));
  reg = await startRegistry(path.join(dir, "registry"));
  // Leaves start 2 s after the CA's root (cosign verifies the chain at the leaf's notBefore).
  sigstore = await startMockSigstore({ caBackdateMs: -2000 });
  await new Promise((r) => setTimeout(r, 2500));
  rootFile = path.join(dir, "trusted_root.json");
  writeFileSync(rootFile, JSON.stringify(sigstore.trustedRoot));
  const signed = async (name: string, o: { rekorBundle?: boolean; tamper?: boolean; tsa?: boolean } = {}) => {
    const img = pushBusyboxImage(reg.host, `legacy/${name}`, "v1", { marker: `legacy-${name}` });
    const sig = await legacyKeylessSignature(sigstore, {
      digest: img.digest,
      repository: img.repo,
      subject: SUBJECT,
      issuer: ISSUER,
      ...(o.rekorBundle === false ? { rekorBundle: false } : {}),
      ...(o.tsa ? { tsa: true } : {}),
    });
    // Tampered: the signed payload gains an annotation after signing.
    const payload = o.tamper
      ? Buffer.from(sig.payload.toString().replace('"optional":null', '"optional":{"injected":"yes"}'))
      : sig.payload;
    await attachLegacy(img, { ...sig, payload });
    return img;
  };
  const good = await signed("good");
  const ts = await signed("timestamped", { tsa: true });
  const tampered = await signed("tampered", { tamper: true });
  const noRekor = await signed("no-rekor", { rekorBundle: false });
  cases.push(
    ...identityCases(good, SUBJECT, ISSUER),
    { name: "pass (with RFC 3161 timestamp)", image: ts, identity: SUBJECT, issuer: ISSUER, expect: "pass" },
    { name: "tampered payload", image: tampered, identity: SUBJECT, issuer: ISSUER, expect: "fail" },
    { name: "missing Rekor bundle", image: noRekor, identity: SUBJECT, issuer: ISSUER, expect: "fail" },
  );
}, 120_000);

afterAll(async () => {
  await reg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("legacy keyless .sig: ours vs `cosign verify` with the same trusted root", () => {
  it("agrees on pass / wrong identity / wrong issuer / tampered / missing Rekor bundle", async () => {
    const problems = await agreement(cases, cosignVerify, async (c) => {
      const mine = await ours(c);
      return { ok: mine.ok, why: mine.checks.map((k) => `${k.result}/${k.check}: ${k.reason}`).join(" | ") };
    });
    expect(problems).toEqual([]);
  }, 120_000);
});
