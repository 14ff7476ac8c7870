// The agent's key management providers: the `keyManagement` configuration, and what
// /v1/status and the metrics show, against the Entra and Key Vault HTTPS doubles.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type ConfigError, validateConfig } from "../../src/config/agent.js";
import { createKeyProviders } from "../../src/decision/key-providers.js";
import {
  type AzureDoubles,
  type EntraDouble,
  startAzureDoubles,
  type VaultDouble,
} from "../support/azure-doubles.js";

let dir: string;
let entra: EntraDouble;
let vault: VaultDouble;
let az: AzureDoubles;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-kp-"));
  az = await startAzureDoubles(dir);
  ({ entra, vault } = az);
});
afterEach(() => {
  vi.unstubAllEnvs();
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
        azure: {
          sources: ["workloadIdentity", "managedIdentity"],
          tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47",
          clientId: "c",
          federatedTokenFile: "/var/run/secrets/azure/tokens/azure-identity-token",
          maxStaleSeconds: 3600,
        },
      },
    });
    expect(cfg.keyManagement.azure).toMatchObject({
      credential: {
        sources: ["workloadIdentity", "managedIdentity"],
        tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47",
        clientId: "c",
        federatedTokenFile: "/var/run/secrets/azure/tokens/azure-identity-token",
      },
      maxStaleSeconds: 3600,
      disableChallengeResourceVerification: false,
    });
    const d = validateConfig({}).keyManagement.azure;
    expect(d.maxStaleSeconds).toBe(86_400);
    expect(d.credential.sources).toEqual(["environment", "workloadIdentity", "managedIdentity", "azureCli"]);
    expect(
      problems({
        keyManagement: {
          azure: {
            clientSecret: "s3cret",
            clientSecretFile: "/run/secret",
            tenantID: "x",
            sources: ["browser"],
            maxStaleSeconds: 5,
          },
        },
      }),
    ).toEqual([
      "keyManagement.azure.clientSecret: not accepted; give the secret in AZURE_CLIENT_SECRET (or a certificate in AZURE_CLIENT_CERTIFICATE_PATH) from a Secret",
      "keyManagement.azure.clientSecretFile: not accepted; give the secret in AZURE_CLIENT_SECRET (or a certificate in AZURE_CLIENT_CERTIFICATE_PATH) from a Secret",
      "keyManagement.azure.tenantID: unknown key",
      "keyManagement.azure.sources[0]: must be one of environment, workloadIdentity, managedIdentity, azureCli",
      "keyManagement.azure.maxStaleSeconds: an integer from 60 to 2592000",
    ]);
    expect(problems({ keyManagement: { aws: {} } })).toEqual(["keyManagement.aws: unknown key"]);
  });
});

describe("status and metrics", () => {
  it("per provider: ready, stale, refresh results; no secret in either", async () => {
    // The secret as a Secret-backed environment variable; the CA for Entra and the vault.
    vi.stubEnv("AZURE_CLIENT_SECRET", az.sp.secret);
    const cfg = validateConfig({
      keyManagement: { azure: az.keyManagementAzure },
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
    expect(entra.issued.length).toBeGreaterThan(0);
    for (const s of az.secrets()) expect(all).not.toContain(s);
    kp.stop();
  });
});
