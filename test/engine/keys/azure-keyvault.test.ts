// The Azure Key Vault provider against HTTPS doubles of Entra and Key Vault (real TLS with a
// test CA, the real @azure/identity and @azure/keyvault-* SDKs, the vault's 401 challenge).
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAzureCredential } from "../../../src/engine/azure/credential.js";
import { AzureKeyVaultProvider, jwkToSpkiPem } from "../../../src/engine/keys/azure-keyvault.js";
import { parseAzureKmsUri } from "../../../src/engine/keys/azurekms.js";
import type { KeyVaultRef } from "../../../src/engine/policy/model.js";
import {
  type AzureDoubles,
  doubleKeyProviders,
  type EntraDouble,
  startAzureDoubles,
  type VaultDouble,
} from "../../support/azure-doubles.js";

let dir: string;
let entra: EntraDouble;
let vault: VaultDouble;
let az: AzureDoubles;

const ec = () =>
  generateKeyPairSync("ec", { namedCurve: "P-256" })
    .publicKey.export({ type: "spki", format: "pem" })
    .toString();

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-akv-"));
  az = await startAzureDoubles(dir);
  ({ entra, vault } = az);
});
afterAll(async () => {
  await az?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function credential(secret = az.sp.secret) {
  return createAzureCredential(az.credential, { AZURE_CLIENT_SECRET: secret });
}

const tokenRequests = () => entra.requests.filter((r) => r.kind === "token");

function provider(
  secret?: string,
  extra: { maxStaleSeconds?: number; verify?: boolean; readTimeoutMs?: number } = {},
) {
  return new AzureKeyVaultProvider({
    vaultURI: vault.url,
    credential: credential(secret),
    disableChallengeResourceVerification: !extra.verify,
    agent: az.agent,
    ...(extra.maxStaleSeconds !== undefined ? { maxStaleSeconds: extra.maxStaleSeconds } : {}),
    ...(extra.readTimeoutMs !== undefined ? { readTimeoutMs: extra.readTimeoutMs } : {}),
  });
}

const keyRef = (name: string, version?: string): KeyVaultRef => ({
  kind: "AzureKeyVaultKey",
  vaultURI: vault.url,
  name,
  ...(version ? { version } : {}),
  refreshSeconds: 3600,
});

describe("Azure Key Vault provider", () => {
  it("reads a key through the vault's challenge: 401 → Entra token for the challenge's scope → bearer", async () => {
    const pem = ec();
    vault.putKey("k1", pem);
    const p = provider();
    const before = vault.requests.length;
    expect(await p.resolve(keyRef("k1"))).toBe(pem);
    const reqs = vault.requests.slice(before);
    expect(reqs[0]).toMatchObject({ path: "/keys/k1/", authorized: false });
    expect(reqs.at(-1)).toMatchObject({ path: "/keys/k1/", authorized: true });
    expect(reqs.every((r) => r.apiVersion)).toBe(true);
    expect(tokenRequests().at(-1)).toMatchObject({ scope: "https://vault.azure.net/.default", ok: true });
    expect(p.status()).toMatchObject({ type: "azurekeyvault", ready: true, stale: false });
    p.stop();
  });

  it("an unpinned key follows a new version (one change notification); a pinned one stays", async () => {
    const a = generateKeyPairSync("ec", { namedCurve: "P-384" })
      .publicKey.export({ type: "spki", format: "pem" })
      .toString();
    const v1 = vault.putKey("pinned", a);
    const p = provider();
    const changes: Set<string>[] = [];
    p.onChange((k) => changes.push(k));
    expect(await p.resolve(keyRef("pinned", v1))).toBe(a);
    expect(await p.resolve(keyRef("pinned"))).toBe(a);
    const b = ec();
    vault.putKey("pinned", b);
    await p.refresh();
    expect(await p.resolve(keyRef("pinned", v1))).toBe(a);
    expect(await p.resolve(keyRef("pinned"))).toBe(b);
    expect(changes).toEqual([new Set([`AzureKeyVaultKey/${vault.url}/pinned`])]);
    // No change, no notification.
    await p.refresh();
    expect(changes.length).toBe(1);
    p.stop();
  });

  it("keeps the last good material while the vault is down, says stale, and recovers", async () => {
    const pem = ec();
    vault.putKey("outage", pem);
    const p = provider(undefined, { maxStaleSeconds: 3600 });
    expect(await p.resolve(keyRef("outage"))).toBe(pem);
    vault.setDown(true);
    try {
      await p.refresh();
      expect(await p.resolve(keyRef("outage"))).toBe(pem);
      const st = p.status();
      expect(st).toMatchObject({ ready: true, stale: true });
      expect(st.error).toMatch(/key outage: the vault is unreachable \(ECONNRESET|key outage: /);
    } finally {
      vault.setDown(false);
    }
    await p.refresh();
    expect(p.status()).toMatchObject({ ready: true, stale: false });
    expect(p.status().error).toBeUndefined();
    p.stop();
  });

  it("a vault that accepts and never answers: the read fails at its deadline, the last good copy stays", async () => {
    const pem = ec();
    vault.putKey("silent", pem);
    vault.putKey("never-read", ec());
    const p = provider(undefined, { maxStaleSeconds: 3600, readTimeoutMs: 300 });
    expect(await p.resolve(keyRef("silent"))).toBe(pem);
    vault.setHung(true);
    try {
      await p.refresh();
      expect(await p.resolve(keyRef("silent"))).toBe(pem);
      expect(p.status()).toMatchObject({ ready: true, stale: true });
      expect(p.status().error).toMatch(/key silent: the vault did not answer within 300 ms/);
      // The first read of another object has no last good copy: a typed failure, not a hang.
      await expect(p.resolve(keyRef("never-read"))).rejects.toThrow(
        "key never-read: the vault did not answer within 300 ms",
      );
    } finally {
      vault.setHung(false);
    }
    p.stop();
  });

  it("past maxStaleSeconds the provider is not ready, the material still served", async () => {
    const pem = ec();
    vault.putKey("aged", pem);
    let now = Date.now();
    const p = new AzureKeyVaultProvider({
      vaultURI: vault.url,
      credential: credential(),
      disableChallengeResourceVerification: true,
      agent: az.agent,
      maxStaleSeconds: 60,
      now: () => now,
    });
    await p.resolve(keyRef("aged"));
    vault.setDown(true);
    try {
      await p.refresh();
      now += 61_000;
      expect(p.status()).toMatchObject({ ready: false, stale: true });
      expect(p.status().error).toMatch(/stale for more than 60 s/);
      expect(await p.resolve(keyRef("aged"))).toBe(pem);
    } finally {
      vault.setDown(false);
    }
    p.stop();
  });

  it("wrong client secret: a clear authentication error, and the secret appears nowhere", async () => {
    vault.putKey("denied", ec());
    const wrong = `tg~wrong-${"x".repeat(20)}`;
    const p = provider(wrong);
    const err = await p.resolve(keyRef("denied")).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^key denied: Azure authentication failed: /);
    expect(err?.message).toMatch(/AADSTS7000215|invalid_client/);
    const st = p.status();
    expect(st).toMatchObject({ ready: false, stale: false });
    const text = `${err?.message} ${JSON.stringify(st)}`;
    expect(text).not.toContain(wrong);
    expect(text).not.toContain(az.sp.secret);
    p.stop();
  });

  it("a missing object is named; a disabled version is refused", async () => {
    const p = provider();
    await expect(p.resolve(keyRef("nope"))).rejects.toThrow(/^key nope: not found in the vault$/);
    const v = vault.putKey("off", ec());
    vault.disable("keys", "off", v);
    await expect(p.resolve(keyRef("off", v))).rejects.toThrow(/disabled/);
    p.stop();
  });

  it("by default the SDK checks the challenge's resource against the vault host", async () => {
    vault.putKey("verify", ec());
    const p = provider(undefined, { verify: true });
    await expect(p.resolve(keyRef("verify"))).rejects.toThrow(
      /challenge resource 'vault.azure.net' does not match/,
    );
    p.stop();
  });

  it("KeyProviders: one provider per vault and identity, changes fanned out, all statuses listed", async () => {
    vault.putKey("fan", ec());
    const kp = doubleKeyProviders(az);
    const seen: string[] = [];
    kp.onChange((k) => seen.push(...k));
    await kp.resolveKey(keyRef("fan"));
    await kp.resolveKey({ ...keyRef("fan"), clientID: az.sp.clientId });
    const st = kp.status();
    expect(st.map((s) => s.provider)).toEqual([
      "inline",
      `azurekeyvault:${new URL(vault.url).host}`,
      `azurekeyvault:${new URL(vault.url).host}/${az.sp.clientId}`,
    ]);
    vault.putKey("fan", ec());
    await kp.refresh();
    expect(seen).toEqual([`AzureKeyVaultKey/${vault.url}/fan`, `AzureKeyVaultKey/${vault.url}/fan`]);
    kp.stop();
  });
});

describe("objects no policy reads", () => {
  it("are dropped after the grace period, and a provider left with none is stopped and unlisted", async () => {
    vault.putKey("kept", ec());
    vault.putKey("gone", ec());
    const kp = doubleKeyProviders(az);
    await kp.resolveKey(keyRef("kept"));
    await kp.resolveKey(keyRef("gone"));
    const vaultStatus = () => kp.status().filter((s) => s.type === "azurekeyvault");
    kp.retain(new Set([`AzureKeyVaultKey/${vault.url}/kept`]));
    expect(vaultStatus()[0]?.objects).toHaveLength(2); // within the grace period
    kp.retain(new Set([`AzureKeyVaultKey/${vault.url}/kept`]), -1);
    expect(vaultStatus()[0]?.objects.map((o) => o.split(" ")[1])).toEqual(["kept"]);
    kp.retain(new Set(), -1);
    expect(vaultStatus()).toEqual([]);
    kp.stop();
  });
});

describe("concurrency", () => {
  it("50 concurrent first reads of one key: one provider, one token request, one authorized vault read", async () => {
    vault.putKey("busy", ec());
    const kp = doubleKeyProviders(az);
    const tokens = tokenRequests().length;
    const reads = () => vault.requests.filter((r) => r.path === "/keys/busy/" && r.authorized).length;
    const got = await Promise.all(Array.from({ length: 50 }, () => kp.resolveKey(keyRef("busy"))));
    expect(new Set(got).size).toBe(1);
    expect(tokenRequests().length - tokens).toBe(1);
    expect(reads()).toBe(1);
    expect(kp.status().filter((s) => s.type === "azurekeyvault")).toHaveLength(1);
    kp.stop();
  });
});

describe("azurekms:// URIs and JWKs", () => {
  it("parses cosign-style key URIs", () => {
    expect(parseAzureKmsUri("azurekms://release.vault.azure.net/cosign")).toEqual({
      vaultURI: "https://release.vault.azure.net",
      name: "cosign",
    });
    expect(parseAzureKmsUri(`azurekms://release.vault.azure.net/cosign/${"a".repeat(32)}`)).toMatchObject({
      version: "a".repeat(32),
    });
    expect(parseAzureKmsUri("azurekms://127.0.0.1:8443/k")).toMatchObject({
      vaultURI: "https://127.0.0.1:8443",
    });
    for (const bad of [
      "azurekms://",
      "azurekms://v.vault.azure.net",
      "azurekms://v.vault.azure.net/k/short",
      "awskms://x/y",
      "azurekms://v/k_bad",
      "azurekms://a@b/k",
    ])
      expect(parseAzureKmsUri(bad), bad).toHaveProperty("error");
  });

  it("turns EC and RSA JWKs into SPKI PEM and refuses others", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    const j = rsa.export({ format: "jwk" });
    const pem = jwkToSpkiPem({
      kty: "RSA-HSM",
      n: Buffer.from(j.n!, "base64url"),
      e: Buffer.from(j.e!, "base64url"),
    });
    expect(pem).toBe(rsa.export({ type: "spki", format: "pem" }).toString());
    expect(() =>
      jwkToSpkiPem({ kty: "EC", crv: "P-256K", x: new Uint8Array(32), y: new Uint8Array(32) }),
    ).toThrow(/P-256K is not supported/);
    expect(() => jwkToSpkiPem({ kty: "oct", k: new Uint8Array(16) })).toThrow(/not a public key type/);
  });
});
