// spec.keyManagementProviders: validation paths, cross references, and compiling without
// key management providers (a clear issue, never "no trust material").
import { describe, expect, it } from "vitest";
import { compilePolicy, validatePolicy } from "../../../src/engine/policy/index.js";

const doc = (spec: Record<string, unknown>) => ({
  apiVersion: "tollgate.dev/v1alpha1",
  kind: "ImagePolicy",
  metadata: { name: "p" },
  spec: {
    keyManagementProviders: [
      { name: "kv", azureKeyVault: { vaultURI: "https://kv.vault.azure.net/", keys: [{ name: "cosign" }] } },
    ],
    verifiers: [{ name: "c", cosign: { keys: [{ keyManagementProvider: "kv" }] } }],
    ...spec,
  },
});

const issues = (d: unknown) => {
  const r = validatePolicy(d);
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
};

describe("spec.keyManagementProviders", () => {
  it("normalises a valid provider (vault origin, default refresh 5m)", () => {
    const r = validatePolicy(doc({}));
    expect(r.ok && r.policy.spec.keyManagementProviders).toEqual([
      {
        name: "kv",
        refreshIntervalSeconds: 300,
        azureKeyVault: {
          vaultURI: "https://kv.vault.azure.net",
          certificates: [],
          keys: [{ name: "cosign" }],
        },
      },
    ]);
  });

  it("names every problem with its path", () => {
    expect(
      issues(
        doc({
          keyManagementProviders: [
            {
              name: "kv",
              refreshInterval: "1s",
              azureKeyVault: {
                vaultURI: "http://kv.vault.azure.net",
                keys: [{ name: "cosign", version: "v1" }],
              },
            },
            { name: "kv", azureKeyVault: { vaultURI: "https://x.vault.azure.net" } },
          ],
        }),
      ),
    ).toEqual([
      "spec.keyManagementProviders[0].refreshInterval: must be between 10s and 24h",
      "spec.keyManagementProviders[0].azureKeyVault.vaultURI: must be https://",
      "spec.keyManagementProviders[0].azureKeyVault.keys[0].version: a Key Vault version is 32 hex characters (omit it for the latest)",
      "spec.keyManagementProviders[1].name: duplicate provider kv",
    ]);
    expect(
      issues(
        doc({
          keyManagementProviders: [
            {
              name: "kv",
              azureKeyVault: { vaultURI: "https://kv.vault.azure.net", certificates: [{ name: "ca" }] },
            },
            {
              name: "spare",
              azureKeyVault: { vaultURI: "https://kv.vault.azure.net", keys: [{ name: "k" }] },
            },
          ],
          verifiers: [
            {
              name: "c",
              cosign: {
                keys: [{ keyManagementProvider: "kv" }, { kms: "azurekms://kv.vault.azure.net/k/short" }],
              },
            },
            {
              name: "n",
              notation: {
                trustedIdentities: ["*"],
                trustStores: [{ name: "s", keyManagementProvider: "nope" }],
              },
            },
          ],
        }),
      ),
    ).toEqual([
      'spec.verifiers[0].cosign.keys[1].kms: key version "short": 32 hex characters',
      "spec.verifiers[0].cosign.keys[0].keyManagementProvider: provider kv lists no keys",
      "spec.verifiers[1].notation.trustStores[0].keyManagementProvider: no spec.keyManagementProviders entry named nope",
      "spec.keyManagementProviders[1]: provider spare is not used by any trust store or cosign key",
    ]);
  });

  it("compiling without key management providers is an error naming the reference", async () => {
    await expect(compilePolicy(doc({}))).rejects.toThrow(
      /spec\.verifiers\[0\]\.cosign\.keys\[0\]\.keyManagementProvider: cannot be read: no key management providers are configured/,
    );
    await expect(
      compilePolicy(
        doc({
          keyManagementProviders: undefined,
          verifiers: [{ name: "c", cosign: { keys: [{ kms: "azurekms://kv.vault.azure.net/k" }] } }],
        }),
      ),
    ).rejects.toThrow(/keys\[0\]\.kms: cannot be read/);
  });

  it("a vault failure on first read rejects the policy with the vault's reason", async () => {
    const resolver = {
      resolve: async () => "",
      resolveKey: async () => {
        throw new Error("key cosign: Azure authentication failed: AADSTS7000215");
      },
    };
    await expect(compilePolicy(doc({}), { resolver })).rejects.toThrow(
      /Key Vault https:\/\/kv\.vault\.azure\.net key cosign cannot be read: key cosign: Azure authentication failed/,
    );
  });
});
