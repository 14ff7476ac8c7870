// Trust material from Azure Key Vault, end to end through the policy source and the engine:
// images signed by the real notation and cosign CLIs in a loopback docker-registry, the
// notation certificate and the cosign public key served by the Key Vault double (HTTPS, test
// CA, 401 challenge, Entra token double), read by the real Azure SDKs. Rotation in the vault
// rolls the policy revision (old verdicts unreachable); an unreachable vault keeps the last
// good material in force and status says stale; secrets appear in no status, log or verdict.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../../src/engine/index.js";
import type { KeyProviders } from "../../../src/engine/keys/providers.js";
import type { CompiledPolicy } from "../../../src/engine/policy/model.js";
import { FilePolicySource } from "../../../src/policy-source/files.js";
import {
  type AzureDoubles,
  doubleKeyProviders,
  type EntraDouble,
  startAzureDoubles,
  type VaultDouble,
} from "../../support/azure-doubles.js";
import { type PushedImage, pushBusyboxImage } from "../../support/images.js";
import {
  type CosignKeys,
  cosignGenerateKeyPair,
  cosignSign,
  type NotationConfig,
  notationInit,
  notationSign,
} from "../../support/signing.js";
import { type SigningFixture, startSigningFixture } from "../../support/signing-fixture.js";

let fx: SigningFixture;
let entra: EntraDouble;
let vault: VaultDouble;
let az: AzureDoubles;
let notation2: NotationConfig;
let keys2: CosignKeys;
let oldSigned: PushedImage;
let newSigned: PushedImage;
let source: FilePolicySource;
let kp: KeyProviders;
const logs: unknown[] = [];

const logger = {
  info: (o: unknown, m?: string) => logs.push({ o, m }),
  warn: (o: unknown, m?: string) => logs.push({ o, m }),
  error: (o: unknown, m?: string) => logs.push({ o, m }),
  debug: () => {},
};

beforeAll(async () => {
  fx = await startSigningFixture({ notationKey: "release-1" });
  az = await startAzureDoubles(path.join(fx.work, "tls"));
  ({ entra, vault } = az);
  mkdirSync(path.join(fx.work, "notation2"));
  [notation2, keys2] = await Promise.all([
    notationInit({ configDir: path.join(fx.work, "notation2"), keyName: "release-2" }),
    cosignGenerateKeyPair(path.join(fx.work, "cosign2")),
  ]);
  oldSigned = pushBusyboxImage(fx.reg.host, "team/app", "old", { marker: "kv-old" });
  newSigned = pushBusyboxImage(fx.reg.host, "team/app", "new", { marker: "kv-new" });
  await notationSign({ ref: oldSigned.pinned, configDir: fx.notation.configDir });
  await cosignSign({ ref: oldSigned.pinned, keyDir: fx.keys });
  await notationSign({ ref: newSigned.pinned, configDir: notation2.configDir });
  await cosignSign({ ref: newSigned.pinned, keyDir: keys2 });

  vault.putCertificate("release-ca", readFileSync(fx.notation.certPath, "utf8"));
  vault.putKey("cosign", fx.keys.publicKeyPem);
  vault.putKey("cosign-azurekms", fx.keys.publicKeyPem);

  const dir = path.join(fx.work, "policies");
  mkdirSync(dir);
  const host = new URL(vault.url).host;
  writeFileSync(
    path.join(dir, "policy.yaml"),
    JSON.stringify({
      apiVersion: "tollgate.dev/v1alpha1",
      kind: "ImagePolicy",
      metadata: { name: "vaulted" },
      spec: {
        images: [`${fx.reg.host}/team/**`],
        keyManagementProviders: [
          {
            name: "release-vault",
            refreshInterval: "1h",
            azureKeyVault: {
              vaultURI: vault.url,
              certificates: [{ name: "release-ca" }],
              keys: [{ name: "cosign" }],
            },
          },
        ],
        verifiers: [
          {
            name: "notary",
            notation: {
              trustedIdentities: ["*"],
              trustStores: [{ type: "ca", name: "release", keyManagementProvider: "release-vault" }],
            },
          },
          { name: "cosign-vault", cosign: { keys: [{ keyManagementProvider: "release-vault" }] } },
          { name: "cosign-kms", cosign: { keys: [{ kms: `azurekms://${host}/cosign-azurekms` }] } },
        ],
      },
    }),
  );
  kp = doubleKeyProviders(az);
  source = new FilePolicySource({ dir, config: { defaultPolicy: "vaulted" }, rescanIntervalMs: 0, logger });
  source.useKeyProviders(kp);
  await source.start();
}, 300_000);

afterAll(async () => {
  await source?.stop();
  kp?.stop();
  await az?.stop();
  await fx?.stop();
});

const current = (): CompiledPolicy => {
  const p = source.policies().find((x) => x.name === "vaulted");
  if (!p) throw new Error(`policy not loaded: ${JSON.stringify(source.status())}`);
  return p;
};
const subject = (img: PushedImage) => ({ reference: img.ref, digest: img.digest });

/** Waits for the source to load a revision other than `rev`. */
async function nextRevision(rev: string): Promise<CompiledPolicy> {
  for (let i = 0; i < 200 && current().revision === rev; i++) await new Promise((r) => setTimeout(r, 25));
  return current();
}

describe("Key Vault trust material in verification", () => {
  const engine = createEngine();
  let firstRevision = "";

  it("a notation certificate and cosign keys (provider and azurekms://) from the vault verify real signatures", async () => {
    const p = current();
    firstRevision = p.revision;
    const v = await engine.verify(subject(oldSigned), p);
    expect(v, JSON.stringify(v.reasons)).toMatchObject({ allowed: true, outcome: "verified" });
    expect(
      v.verifiers
        .filter((c) => c.result === "passed")
        .map((c) => c.verifier)
        .sort(),
    ).toEqual(["cosign-kms", "cosign-vault", "notary"]);
    expect((await engine.verify(subject(newSigned), p)).allowed).toBe(false);
    expect((await engine.verify(subject(oldSigned), p)).cached).toBe(true);
    expect(kp.status().find((s) => s.type === "azurekeyvault")).toMatchObject({ ready: true, stale: false });
  });

  it("rotated in the vault: new revision, new signatures pass, the old verdict is not reused", async () => {
    vault.putCertificate("release-ca", readFileSync(notation2.certPath, "utf8"));
    vault.putKey("cosign", keys2.publicKeyPem);
    vault.putKey("cosign-azurekms", keys2.publicKeyPem);
    await kp.refresh();
    const p = await nextRevision(firstRevision);
    expect(p.revision).not.toBe(firstRevision);
    const fresh = await engine.verify(subject(newSigned), p);
    expect(fresh, JSON.stringify(fresh.reasons)).toMatchObject({ allowed: true, outcome: "verified" });
    const old = await engine.verify(subject(oldSigned), p);
    expect(old).toMatchObject({ allowed: false, cached: false });
    expect(old.policy.revision).toBe(p.revision);
  });

  it("vault unreachable: the last good material stays in force and status says stale", async () => {
    const before = current().revision;
    vault.setDown(true);
    try {
      await kp.refresh();
      const st = kp.status().find((s) => s.type === "azurekeyvault");
      expect(st).toMatchObject({ ready: true, stale: true });
      expect(st?.error).toMatch(/unreachable|ECONNRESET|socket/i);
      expect(current().revision).toBe(before);
      const v = await createEngine().verify(subject(newSigned), current());
      expect(v.allowed).toBe(true);
    } finally {
      vault.setDown(false);
    }
    await kp.refresh();
    expect(kp.status().find((s) => s.type === "azurekeyvault")).toMatchObject({ stale: false });
  });

  it("the client secret and the tokens appear in no status, log line or verdict", async () => {
    const v = await engine.verify(subject(newSigned), current());
    const text = JSON.stringify([kp.status(), source.status(), logs, v]);
    expect(entra.issued.length).toBeGreaterThan(0);
    for (const s of az.secrets()) expect(text).not.toContain(s);
    expect(logs.length).toBeGreaterThan(0);
  });
});
