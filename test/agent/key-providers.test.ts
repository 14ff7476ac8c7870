// The agent's key management providers: the `keyManagement` configuration, and what
// /v1/status and the metrics show, against the Entra and Key Vault HTTPS doubles.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConfigError, validateConfig } from "../../src/agent/config.js";
import { createKeyProviders } from "../../src/agent/key-providers.js";
import {
  type AzureDoubles,
  type EntraDouble,
  startAzureDoubles,
  type TestTls,
  type VaultDouble,
} from "../support/azure-doubles.js";

let dir: string;
let tls: TestTls;
let entra: EntraDouble;
let vault: VaultDouble;
let az: AzureDoubles;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-kp-"));
  az = await startAzureDoubles(dir);
  ({ tls, entra, vault } = az);
});
afterAll(async () => {
  await az?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function problems(raw: unknown): string[] {
  try {
    validateConfig(raw);
    return [];
  } catch (e) {
    return (e as ConfigError).problems ?? [String(e)];
  }
}

describe("keyManagement configuration", () => {
  it("accepts the Azure identity settings and refuses a secret value in the file", () => {
    const cfg = validateConfig({
      keyManagement: {
        azure: { tenantId: "t", clientId: "c", clientSecretFile: "/run/secret", maxStaleSeconds: 3600 },
      },
    });
    expect(cfg.keyManagement.azure).toMatchObject({
      credential: { tenantId: "t", clientId: "c", clientSecretFile: "/run/secret" },
      maxStaleSeconds: 3600,
      disableChallengeResourceVerification: false,
    });
    expect(validateConfig({}).keyManagement.azure.maxStaleSeconds).toBe(86_400);
    expect(
      problems({ keyManagement: { azure: { clientSecret: "s3cret", tenantID: "x", maxStaleSeconds: 5 } } }),
    ).toEqual([
      "keyManagement.azure.clientSecret: not accepted in the file; use clientSecretFile or AZURE_CLIENT_SECRET",
      "keyManagement.azure.tenantID: unknown key",
      "keyManagement.azure.maxStaleSeconds: an integer from 60 to 2592000",
    ]);
    expect(problems({ keyManagement: { aws: {} } })).toEqual(["keyManagement.aws: unknown key"]);
  });
});

describe("status and metrics", () => {
  it("per provider: ready, stale, refresh results; no secret in either", async () => {
    const secretFile = path.join(dir, "client-secret");
    writeFileSync(secretFile, `${entra.clientSecret}\n`, { mode: 0o600 });
    const caFile = path.join(dir, "ca.pem");
    writeFileSync(caFile, tls.caPem);
    const cfg = validateConfig({
      keyManagement: {
        azure: {
          tenantId: entra.tenantId,
          clientId: entra.clientId,
          clientSecretFile: secretFile,
          authorityHost: entra.url,
          disableInstanceDiscovery: true,
          disableChallengeResourceVerification: true,
          caFile,
        },
      },
    });
    const registry = new Registry();
    const kp = createKeyProviders(cfg, registry);
    const pem = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .publicKey.export({ type: "spki", format: "pem" })
      .toString();
    vault.putKey("agent-key", pem);
    const ref = {
      kind: "AzureKeyVaultKey" as const,
      vaultURI: vault.url,
      name: "agent-key",
      refreshSeconds: 3600,
    };
    expect(await kp.resolveKey(ref)).toBe(pem);
    const name = `azurekeyvault:${new URL(vault.url).host}`;
    let text = await registry.metrics();
    expect(text).toContain(`tollgate_key_provider_ready{provider="inline",type="inline"} 1`);
    expect(text).toContain(`tollgate_key_provider_ready{provider="${name}",type="azurekeyvault"} 1`);
    expect(text).toContain(`tollgate_key_provider_stale{provider="${name}",type="azurekeyvault"} 0`);
    expect(text).toContain(`tollgate_key_provider_refreshes_total{provider="${name}",result="ok"} 1`);
    vault.setDown(true);
    try {
      await kp.refresh();
    } finally {
      vault.setDown(false);
    }
    text = await registry.metrics();
    expect(text).toContain(`tollgate_key_provider_stale{provider="${name}",type="azurekeyvault"} 1`);
    expect(text).toContain(`tollgate_key_provider_refreshes_total{provider="${name}",result="error"} 1`);
    const st = kp.status().find((s) => s.provider === name);
    expect(st).toMatchObject({
      ready: true,
      stale: true,
      objects: [expect.stringMatching(/^key agent-key \(latest\)@[0-9a-f]{32}$/)],
    });
    expect(st?.lastRefresh).toMatch(/^\d{4}-/);
    expect(st?.revision).toMatch(/^sha256:[0-9a-f]{64}$/);
    const all = `${text}${JSON.stringify(kp.status())}`;
    expect(all).not.toContain(entra.clientSecret);
    for (const t of entra.issuedTokens()) expect(all).not.toContain(t);
    kp.stop();
  });
});
