// `tollgate verify` (the real CLI bundle, in a child process) with a cosign key named as
// azurekms://, read from the Key Vault double with the identity of the agent configuration's
// keyManagement.azure (client secret in AZURE_CLIENT_SECRET, authority host and CA overridden).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AzureDoubles,
  type EntraDouble,
  startAzureDoubles,
  type VaultDouble,
} from "../support/azure-doubles.js";
import { type PushedImage, pushBusyboxImage } from "../support/images.js";
import { type LocalRegistry, startRegistry } from "../support/registry.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../support/signing.js";
import { buildCli, cleanEnv, runCli } from "./helpers.js";

let cli: string;
let dir: string;
let reg: LocalRegistry;
let keys: CosignKeys;
let signed: PushedImage;
let entra: EntraDouble;
let vault: VaultDouble;
let az: AzureDoubles;

beforeAll(async () => {
  cli = await buildCli();
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-verify-kv-"));
  reg = await startRegistry();
  keys = await cosignGenerateKeyPair(path.join(dir, "cosign"));
  signed = pushBusyboxImage(reg.host, "kv/app", "signed", { marker: "kv-cli" });
  await cosignSign({ ref: signed.pinned, keyDir: keys });
  az = await startAzureDoubles(path.join(dir, "tls"));
  ({ entra, vault } = az);
  vault.putKey("release", keys.publicKeyPem);
}, 180_000);

afterAll(async () => {
  await az?.stop();
  await reg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function files() {
  const config = path.join(dir, "agent.yaml");
  writeFileSync(
    config,
    JSON.stringify({
      keyManagement: { azure: az.keyManagementAzure },
    }),
  );
  const policy = path.join(dir, "policy.yaml");
  writeFileSync(
    policy,
    JSON.stringify({
      apiVersion: "tollgate.dev/v1alpha1",
      kind: "ImagePolicy",
      metadata: { name: "kms" },
      spec: {
        verifiers: [
          { name: "cosign", cosign: { keys: [{ kms: `azurekms://${new URL(vault.url).host}/release` }] } },
        ],
      },
    }),
  );
  return { config, policy };
}

describe("tollgate verify with an azurekms:// key", () => {
  it("reads the key from the vault and verifies the real cosign signature", async () => {
    const { config, policy } = files();
    const r = await runCli(cli, ["verify", signed.ref, "--policy", policy, "--config", config], {
      env: { ...cleanEnv(), AZURE_CLIENT_SECRET: az.sp.secret },
    });
    expect(r.stdout + r.stderr).toMatch(/^Answer: +ALLOWED$/m);
    expect(r.code).toBe(0);
    expect(vault.requests.some((q) => q.path === "/keys/release/" && q.authorized)).toBe(true);
  });

  it("wrong client secret: a usage error saying authentication failed, the secret not shown", async () => {
    const wrong = "tg~not-the-secret-0123456789";
    const { config, policy } = files();
    const r = await runCli(cli, ["verify", signed.ref, "--policy", policy, "--config", config], {
      env: { ...cleanEnv(), AZURE_CLIENT_SECRET: wrong },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /kms: Key Vault https:\/\/127\.0\.0\.1:\d+ key release cannot be read: key release: Azure authentication failed/,
    );
    expect(r.stdout + r.stderr).not.toContain(wrong);
    expect(r.stdout + r.stderr).not.toContain(az.sp.secret);
  });
});
