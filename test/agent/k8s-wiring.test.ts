// The agent configuration `policy.source: kubernetes` builds the informer source from a
// kubeconfig file, and one-shot users (pull verifier fallback, `tollgate verify`) get a
// synced source from startSynced(). Against the in-test API server (real list/watch).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { defaultConfig } from "../../src/config/agent.js";
import { createPolicySource, startSynced } from "../../src/decision/wiring.js";
import type { CompiledPolicy, PolicySource } from "../../src/policy-source/types.js";
import { newPublicKeyPem, policyDoc } from "../policy-source/fixtures.js";
import { FakeApiServer, type KObject, kubeConfigFor } from "../support/fake-apiserver.js";

const silent = { info() {}, warn() {}, error() {}, debug() {} };

describe("agent wiring: kubernetes policy source", () => {
  let api: FakeApiServer | undefined;
  let source: PolicySource<CompiledPolicy> | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    await source?.stop();
    await api?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("selects by namespace annotation and default once synced", async () => {
    api = await FakeApiServer.start();
    api.apply("namespaces", {
      metadata: { name: "team-a", annotations: { "tollgate.dev/policy": "strict" } },
    });
    api.apply("namespaces", { metadata: { name: "team-b", annotations: {} } });
    api.apply("imagepolicies", policyDoc("strict", { key: newPublicKeyPem() }) as unknown as KObject);
    api.apply("imagepolicies", policyDoc("baseline", { key: newPublicKeyPem() }) as unknown as KObject);
    dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-kubeconfig-"));
    const kubeconfig = path.join(dir, "kubeconfig");
    writeFileSync(kubeconfig, kubeConfigFor(api.url).exportConfig());

    const cfg = defaultConfig();
    cfg.policy = { ...cfg.policy, source: "kubernetes", kubeconfig, defaultPolicy: "baseline" };
    source = await createPolicySource(cfg, silent);
    await startSynced(source, 15_000);

    const a = source.select("team-a");
    const b = source.select("team-b");
    expect(a.kind === "policy" && a.policy.name).toBe("strict");
    expect(b.kind === "policy" && b.policy.name).toBe("baseline");
    expect(source.status()).toMatchObject({ source: "kubernetes", ready: true });
    expect(
      source
        .policiesInUse()
        .map((p) => p.name)
        .sort(),
    ).toEqual(["baseline", "strict"]);
  });

  it("fails the one-shot start when the API server is unreachable, instead of deciding unsynced", async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-kubeconfig-"));
    const kubeconfig = path.join(dir, "kubeconfig");
    writeFileSync(kubeconfig, kubeConfigFor("http://127.0.0.1:9").exportConfig());
    const cfg = defaultConfig();
    cfg.policy = { ...cfg.policy, source: "kubernetes", kubeconfig };
    source = await createPolicySource(cfg, silent);
    await expect(startSynced(source, 500)).rejects.toThrow(/did not sync in time/);
    expect(source.select("team-a").kind).toBe("error");
  });
});
