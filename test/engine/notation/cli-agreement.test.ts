// Verdict agreement with the real `notation verify` (1.3.2) on signatures made at test time
// by the real `notation sign` (openssl-made CA and leaves via signingkeys.json), plus a few
// envelopes we craft where notation refuses to sign (wrong EKU, unknown critical header,
// tampering). Both sides read the same trust policy directory.
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadNotationConfigDir } from "../../../src/engine/notation/config.js";
import { verifyNotation } from "../../../src/engine/notation/verify.js";
import type { SignatureCheck } from "../../../src/engine/types.js";
import { type PushedImage, pushBusyboxImage } from "../../support/images.js";
import { type LocalRegistry, startRegistry } from "../../support/registry.js";
import { assertToolsInstalled } from "../../support/tools.js";
import {
  artifactSource,
  attachEnvelope,
  craftJws,
  notationSign,
  notationVerify,
  type PolicyHome,
  policyHome,
  signerHome,
  subjectDescriptor,
} from "./harness.js";
import {
  CODESIGN_EXT,
  chainDer,
  type KeyCert,
  makeLeaf,
  makeRoot,
  SERVERAUTH_EXT,
  startTsa,
  type Tsa,
} from "./pki.js";

interface Case {
  name: string;
  image: PushedImage;
  policy: PolicyHome;
  /** What the Notary Project spec requires. */
  expect: "pass" | "fail";
  /** Set when notation 1.3.2 is known to differ from the spec here (explained in the table). */
  notationDiffers?: string;
}

let reg: LocalRegistry;
let tsa: Tsa;
let dir: string;
const cases: Case[] = [];
const tsaCases: Case[] = [];

const SUBJ = { C: "US", ST: "WA", L: "Seattle", O: "Tollgate Test" };

function repoName(img: PushedImage): string {
  return img.repo.slice(reg.host.length + 1);
}

async function ours(c: Case): Promise<{ ok: boolean; checks: SignatureCheck[] }> {
  const cfg = await loadNotationConfigDir(c.policy.configDir);
  const src = await artifactSource(reg.url, reg.host, repoName(c.image), c.image.digest);
  const checks = await verifyNotation(src, cfg, { verifierName: "notation" });
  return { ok: checks.some((k) => k.result === "passed"), checks };
}

async function runTable(list: Case[]): Promise<string[]> {
  const rows: string[] = [];
  const disagreements: string[] = [];
  for (const c of list) {
    const cli = await notationVerify(c.policy.home, c.image.pinned);
    const mine = await ours(c);
    const cliV = cli.ok ? "pass" : "fail";
    const ourV = mine.ok ? "pass" : "fail";
    const why = mine.checks.map((k) => `${k.result}/${k.check}: ${k.reason}`).join(" | ");
    rows.push(`${c.name.padEnd(34)} ${cliV.padEnd(8)} ${ourV.padEnd(8)} ${why.slice(0, 150)}`);
    if (ourV !== c.expect) disagreements.push(`${c.name}: ours=${ourV}, spec=${c.expect} (${why})`);
    const cliExpected = c.notationDiffers ? (c.expect === "pass" ? "fail" : "pass") : c.expect;
    if (cliV !== cliExpected)
      disagreements.push(`${c.name}: notation=${cliV}, expected ${cliExpected}\n${cli.output.slice(0, 400)}`);
  }
  console.log(
    [`${"case".padEnd(34)} ${"notation".padEnd(8)} ${"ours".padEnd(8)} our reason`, ...rows].join("\n") +
      (list.some((c) => c.notationDiffers)
        ? `\nknown notation deviations: ${list
            .filter((c) => c.notationDiffers)
            .map((c) => `${c.name}: ${c.notationDiffers}`)
            .join("; ")}`
        : ""),
  );
  return disagreements;
}

beforeAll(async () => {
  assertToolsInstalled();
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-notation-"));
  reg = await startRegistry(path.join(dir, "registry"));
  tsa = await startTsa(path.join(dir, "pki"));
  const pki = path.join(dir, "pki");
  const rootA = makeRoot(pki, "root-a", { ...SUBJ, CN: "Tollgate Test Root A" });
  const rootB = makeRoot(pki, "root-b", { ...SUBJ, O: "Untrusted", CN: "Untrusted Root B" });
  const otherTsaRoot = makeRoot(pki, "other-tsa-root", { ...SUBJ, CN: "Some Other TSA Root" });
  // A leaf that is valid now and expires shortly: notation signs with it, then we wait.
  const now = Date.now();
  const short = makeLeaf(pki, "leaf-short", { ...SUBJ, CN: "short-lived signer" }, rootA, CODESIGN_EXT, {
    start: new Date(now - 3600_000),
    end: new Date(now + 40_000),
  });
  const expiresAt = now + 40_000;
  const imgExpired = pushBusyboxImage(reg.host, "notation/expired", "v1", { marker: "expired" });
  const imgTs = pushBusyboxImage(reg.host, "notation/timestamped", "v1", { marker: "timestamped" });
  await notationSign(signerHome(pki, short), imgExpired.pinned);
  await notationSign(signerHome(pki, short), imgTs.pinned, {
    timestampUrl: tsa.url,
    timestampRoot: tsa.root.certPath,
  });

  const good = makeLeaf(pki, "leaf-good", { ...SUBJ, CN: "good signer" }, rootA, CODESIGN_EXT);
  const leafB = makeLeaf(
    pki,
    "leaf-b",
    { ...SUBJ, O: "Untrusted", CN: "untrusted signer" },
    rootB,
    CODESIGN_EXT,
  );
  const server = makeLeaf(pki, "leaf-server", { ...SUBJ, CN: "tls server" }, rootA, SERVERAUTH_EXT);
  const img = (name: string) => pushBusyboxImage(reg.host, `notation/${name}`, "v1", { marker: name });
  const imgJws = img("jws");
  const imgCose = img("cose");
  const imgUntrusted = img("untrusted");
  const imgEku = img("eku");
  const imgTampered = img("tampered");
  const imgTransplant = img("transplant");
  const imgCrit = img("crit");
  const imgCrafted = img("crafted");

  const goodHome = signerHome(pki, good);
  await notationSign(goodHome, imgJws.pinned);
  await notationSign(goodHome, imgCose.pinned, { format: "cose" });
  await notationSign(signerHome(pki, leafB), imgUntrusted.pinned);

  const desc = (i: PushedImage) => subjectDescriptor(reg.url, repoName(i), i.digest);
  const attach = (i: PushedImage, env: Uint8Array, k: KeyCert) =>
    attachEnvelope(dir, i.pinned, env, "application/jose+json", chainDer(k.chainPath));
  // notation refuses to sign with a serverAuth leaf: craft it.
  await attach(imgEku, craftJws({ key: server, target: await desc(imgEku) }), server);
  // A valid crafted envelope (control: the crafted path verifies on both sides).
  await attach(imgCrafted, craftJws({ key: good, target: await desc(imgCrafted) }), good);
  // Same key, same shape, plus an unknown critical header.
  await attach(
    imgCrit,
    craftJws({
      key: good,
      target: await desc(imgCrit),
      extra: { "io.example.unknown": "x" },
      critical: ["io.example.unknown"],
    }),
    good,
  );
  // Tampered: a valid envelope whose payload is swapped after signing (annotations added).
  {
    const env = JSON.parse(
      Buffer.from(craftJws({ key: good, target: await desc(imgTampered) })).toString(),
    ) as Record<string, string>;
    const target = { ...(await desc(imgTampered)), annotations: { injected: "yes" } };
    env.payload = Buffer.from(JSON.stringify({ targetArtifact: target })).toString("base64url");
    await attach(imgTampered, new Uint8Array(Buffer.from(JSON.stringify(env))), good);
  }
  // Transplanted: the real notation JWS of imgJws attached to another image.
  {
    const src = await artifactSource(reg.url, reg.host, repoName(imgJws), imgJws.digest);
    const art = src.artifacts[0]!;
    const env = await src.fetchBlob(art.manifest.layers[0]!);
    await attach(imgTransplant, env, good);
  }

  const trusted = [{ type: "ca" as const, name: "trusted", certs: [rootA] }];
  const pol = (name: string, level: string, ids: string[] = ["*"], stores = ["ca:trusted"]) => ({
    name,
    registryScopes: ["*"],
    signatureVerification: { level },
    trustStores: stores,
    trustedIdentities: ids,
  });
  const strict = policyHome(dir, "strict", pol("strict", "strict"), trusted);
  const strictId = policyHome(
    dir,
    "strict-id",
    pol("strict-id", "strict", ["x509.subject: C=US, ST=WA, O=Tollgate Test"]),
    trusted,
  );
  const wrongId = policyHome(
    dir,
    "wrong-id",
    pol("wrong-id", "strict", ["x509.subject: C=US, ST=WA, O=Someone Else"]),
    trusted,
  );
  const permissive = policyHome(dir, "permissive", pol("permissive", "permissive"), trusted);
  const audit = policyHome(dir, "audit", pol("audit", "audit"), trusted);
  const tsaTrusted = policyHome(
    dir,
    "tsa-trusted",
    pol("tsa-trusted", "strict", ["*"], ["ca:trusted", "tsa:tsa"]),
    [...trusted, { type: "tsa", name: "tsa", certs: [tsa.root] }],
  );
  const tsaOther = policyHome(
    dir,
    "tsa-other",
    pol("tsa-other", "strict", ["*"], ["ca:trusted", "tsa:tsa"]),
    [...trusted, { type: "tsa", name: "tsa", certs: [otherTsaRoot] }],
  );

  cases.push(
    { name: "JWS, trusted root, any identity", image: imgJws, policy: strict, expect: "pass" },
    { name: "COSE, trusted root, matching identity", image: imgCose, policy: strictId, expect: "pass" },
    { name: "untrusted root (strict)", image: imgUntrusted, policy: strict, expect: "fail" },
    { name: "untrusted root (audit logs it)", image: imgUntrusted, policy: audit, expect: "pass" },
    { name: "trusted root, identity mismatch", image: imgJws, policy: wrongId, expect: "fail" },
    { name: "leaf with serverAuth EKU (crafted)", image: imgEku, policy: strict, expect: "fail" },
    { name: "crafted valid JWS (control)", image: imgCrafted, policy: strict, expect: "pass" },
    { name: "tampered payload (crafted)", image: imgTampered, policy: strict, expect: "fail" },
    { name: "signature transplanted", image: imgTransplant, policy: strict, expect: "fail" },
    {
      name: "unknown critical header (crafted)",
      image: imgCrit,
      policy: strict,
      expect: "fail",
      // signature-specification.md: "unknown critical attributes MUST cause signature
      // verification to fail". notation-core-go only checks that crit-listed headers are
      // present, and notation-go hands unknown critical attributes to plugins only, so the
      // CLI accepts this envelope. We follow the spec; the table records the difference.
      notationDiffers: "notation 1.3.2 accepts unknown critical headers (spec: MUST fail)",
    },
  );
  tsaCases.push(
    { name: "expired leaf, strict", image: imgExpired, policy: strict, expect: "fail" },
    { name: "expired leaf, permissive", image: imgExpired, policy: permissive, expect: "pass" },
    { name: "expired leaf, audit", image: imgExpired, policy: audit, expect: "pass" },
    { name: "expired leaf + timestamp, TSA trusted", image: imgTs, policy: tsaTrusted, expect: "pass" },
    { name: "expired leaf + timestamp, other TSA root", image: imgTs, policy: tsaOther, expect: "fail" },
    { name: "expired leaf + timestamp, no tsa store", image: imgTs, policy: strict, expect: "fail" },
  );
  // Wait for the short-lived leaf to expire (wall-clock time is the thing under test).
  const wait = expiresAt + 1500 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}, 240_000);

afterAll(async () => {
  await tsa?.close();
  await reg?.stop();
});

describe("notation verdict agreement", () => {
  it("agrees with `notation verify` on trust, identity, EKU, tampering, transplant, critical headers", async () => {
    const problems = await runTable(cases);
    expect(problems).toEqual([]);
  }, 180_000);

  it("expired leaf: strict fails, permissive/audit pass; a trusted timestamp rescues it, an untrusted one does not", async () => {
    expect(tsa.requests).toBeGreaterThan(0);
    const problems = await runTable(tsaCases);
    expect(problems).toEqual([]);
  }, 180_000);
});
