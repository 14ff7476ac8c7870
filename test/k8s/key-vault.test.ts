// Key Vault material with the kubernetes policy source (in-test API server, Entra and Key
// Vault HTTPS doubles): the ImagePolicy's revision follows the vault, the on-host snapshot
// records the material, and the pull verifier's snapshot-only source (no Azure access on the
// host) compiles it to the same revision.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfig } from "../../src/config/agent.js";
import { createPolicySource } from "../../src/decision/wiring.js";
import type { KubernetesPolicySource } from "../../src/k8s/index.js";
import { readSnapshot } from "../../src/policy-source/snapshot.js";
import type { CompiledPolicy } from "../../src/policy-source/types.js";
import {
  type AzureDoubles,
  doubleKeyProviders,
  startAzureDoubles,
  type VaultDouble,
} from "../support/azure-doubles.js";
import { FakeApiServer, type KObject, kubeConfigFor } from "../support/fake-apiserver.js";
import { waitFor } from "../support/procs.js";

const silent = { info() {}, warn() {}, error() {}, debug() {} };
const pub = () =>
  generateKeyPairSync("ec", { namedCurve: "P-256" })
    .publicKey.export({ type: "spki", format: "pem" })
    .toString();

let dir: string;
let vault: VaultDouble;
let az: AzureDoubles;
let api: FakeApiServer;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-k8s-kv-"));
  az = await startAzureDoubles(path.join(dir, "tls"));
  ({ vault } = az);
  api = await FakeApiServer.start();
});
afterAll(async () => {
  await api?.stop();
  await az?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("Key Vault material through the kubernetes source", () => {
  it("revision follows the vault; the snapshot-only source reproduces it without the vault", async () => {
    vault.putKey("release", pub());
    api.apply("imagepolicies", {
      apiVersion: "tollgate.dev/v1alpha1",
      kind: "ImagePolicy",
      metadata: { name: "baseline" },
      spec: {
        keyManagementProviders: [
          { name: "kv", azureKeyVault: { vaultURI: vault.url, keys: [{ name: "release" }] } },
        ],
        verifiers: [{ name: "cosign", cosign: { keys: [{ keyManagementProvider: "kv" }] } }],
      },
    } as unknown as KObject);
    api.apply("namespaces", { metadata: { name: "team-a", annotations: {} } });
    const kubeconfig = path.join(dir, "kubeconfig");
    writeFileSync(kubeconfig, kubeConfigFor(api.url).exportConfig());
    const cfg = defaultConfig();
    cfg.policy = {
      ...cfg.policy,
      source: "kubernetes",
      kubeconfig,
      defaultPolicy: "baseline",
      snapshotPath: path.join(dir, "state", "policy-snapshot.json"),
      snapshotMaxAgeSeconds: 3600,
    };
    const keys = doubleKeyProviders(az);
    const live = (await createPolicySource(cfg, silent, { keys })) as KubernetesPolicySource<CompiledPolicy>;
    try {
      await live.start();
      await live.whenReady(15_000);
      const first = live.policies()[0]!.revision;
      vault.putKey("release", pub());
      await keys.refresh();
      await waitFor("new revision", () => live.policies()[0]?.revision !== first, 10_000);
      const second = live.policies()[0]!.revision;
      await waitFor(
        "snapshot of the new revision",
        () => {
          try {
            return readSnapshot(cfg.policy.snapshotPath).policies[0]?.revision === second;
          } catch {
            return false;
          }
        },
        10_000,
      );
      const snap = readSnapshot(cfg.policy.snapshotPath);
      expect(Object.keys(snap.policies[0]!.material)).toEqual([`AzureKeyVaultKey/${vault.url}/release#`]);

      // The pull verifier on the host: no keys, no vault; the snapshot's material decides.
      const onHost = await createPolicySource(cfg, silent, { snapshotOnly: true });
      await onHost.start();
      expect(onHost.policies().map((p) => p.revision)).toEqual([second]);
      await onHost.stop();
    } finally {
      await live.stop();
      keys.stop();
    }
  });
});
