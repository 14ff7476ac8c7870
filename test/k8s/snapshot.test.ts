// The on-host policy snapshot with the kubernetes source against the in-test API server:
// written while synced (0600, atomic), used by a restarted source while the API server is
// down, by the pull verifier's snapshot-only source, never past its maximum age, never
// wider than the source last said.
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { defaultConfig } from "../../src/config/agent.js";
import { createPolicySource } from "../../src/decision/wiring.js";
import type { KubernetesPolicySource } from "../../src/k8s/index.js";
import { readSnapshot } from "../../src/policy-source/snapshot.js";
import type { CompiledPolicy, PolicySource } from "../../src/policy-source/types.js";
import { configMapDoc, newPublicKeyPem, policyDoc } from "../policy-source/fixtures.js";
import { FakeApiServer, type KObject, kubeConfigFor } from "../support/fake-apiserver.js";
import { waitFor } from "../support/procs.js";

const silent = { info() {}, warn() {}, error() {}, debug() {} };

let api: FakeApiServer | undefined;
const sources: PolicySource<CompiledPolicy>[] = [];
let dir: string;

afterEach(async () => {
  for (const s of sources.splice(0)) await s.stop();
  await api?.stop();
  api = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function config(url: string, maxAgeSeconds = 3600) {
  dir ??= "";
  const kubeconfig = path.join(dir, "kubeconfig");
  writeFileSync(kubeconfig, kubeConfigFor(url).exportConfig());
  const cfg = defaultConfig();
  cfg.policy = {
    ...cfg.policy,
    source: "kubernetes",
    kubeconfig,
    defaultPolicy: "baseline",
    exemptNamespaces: ["kube-system"],
    snapshotPath: path.join(dir, "state", "policy-snapshot.json"),
    snapshotMaxAgeSeconds: maxAgeSeconds,
  };
  return cfg;
}

async function source(cfg: ReturnType<typeof defaultConfig>, opts: { snapshotOnly?: boolean } = {}) {
  const s = await createPolicySource(cfg, silent, opts);
  sources.push(s);
  await s.start();
  return s;
}

async function seededApi() {
  api = await FakeApiServer.start();
  api.apply(
    "configmaps",
    configMapDoc("tollgate-trust", "keys", { "cosign.pub": newPublicKeyPem() }) as KObject,
  );
  api.apply("imagepolicies", policyDoc("baseline", { key: newPublicKeyPem() }) as unknown as KObject);
  api.apply(
    "imagepolicies",
    policyDoc("strict", {
      key: { configMap: { namespace: "tollgate-trust", name: "keys", key: "cosign.pub" } },
    }) as unknown as KObject,
  );
  api.apply("namespaces", { metadata: { name: "team-a", annotations: { "tollgate.dev/policy": "strict" } } });
  api.apply("namespaces", { metadata: { name: "team-b", annotations: {} } });
  return api;
}

/** A synced live source on the seeded API server, once its first snapshot is on disk. */
async function liveWithSnapshot(maxAgeSeconds?: number) {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-snap-"));
  const a = await seededApi();
  const cfg = config(a.url, maxAgeSeconds);
  const live = (await source(cfg)) as KubernetesPolicySource<CompiledPolicy>;
  await live.whenReady(15_000);
  await waitFor(
    "first snapshot written",
    () => {
      try {
        return readSnapshot(cfg.policy.snapshotPath).policies.length === 2;
      } catch {
        return false;
      }
    },
    10_000,
  );
  return { a, cfg, live };
}

describe("policy snapshot (kubernetes source)", () => {
  it("is written while synced (root-only, atomic) and a restart with the API server down decides from it", async () => {
    const { a, cfg, live } = await liveWithSnapshot();
    const file = cfg.policy.snapshotPath;
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    const revs = Object.fromEntries(live.policies().map((p) => [p.name, p.revision]));

    // A change while synced is in the next snapshot: strict deleted, team-b moved to strict.
    a.delete("imagepolicies", "strict");
    await waitFor("snapshot without strict", () => readSnapshot(file).policies.length === 1, 10_000);
    a.apply(
      "imagepolicies",
      policyDoc("strict", {
        key: { configMap: { namespace: "tollgate-trust", name: "keys", key: "cosign.pub" } },
      }) as unknown as KObject,
    );
    await waitFor("snapshot with strict again", () => readSnapshot(file).policies.length === 2, 10_000);

    await live.stop();
    await a.stop();

    // Restarted with the API server down: the snapshot decides, same revisions.
    const restarted = await source(cfg);
    expect(restarted.status().sync.state).toBe("snapshot");
    expect(restarted.status().ready).toBe(true);
    const sa = restarted.select("team-a");
    expect(sa.kind === "policy" && sa.policy.name).toBe("strict");
    expect(sa.kind === "policy" && sa.policy.revision).toBe(revs.strict);
    const sb = restarted.select("team-b");
    expect(sb.kind === "policy" && sb.policy.name).toBe("baseline");
    // A namespace the source never reported stays closed (never the default policy).
    expect(restarted.select("team-new").kind).toBe("error");

    // The pull verifier's snapshot-only source answers the same without any API call.
    const before = a.requests.length;
    const pv = await source(cfg, { snapshotOnly: true });
    expect(
      pv
        .policiesInUse()
        .map((p) => p.name)
        .sort(),
    ).toEqual(["baseline", "strict"]);
    expect(a.requests.length).toBe(before);
  });

  it("the live sync replaces the snapshot: a policy and a namespace deleted while the agent was away are gone", async () => {
    const { a, cfg, live: first } = await liveWithSnapshot();
    await first.stop();
    sources.splice(0);
    a.delete("imagepolicies", "strict");
    a.delete("namespaces", "team-b");
    const second = await source(cfg);
    // From the snapshot first (strict still there) ...
    expect(second.select("team-a").kind).toBe("policy");
    // ... then the live sync, which drops what the API server no longer has.
    await waitFor("live sync", () => second.status().sync.state === "synced", 15_000);
    expect(second.select("team-a").kind).toBe("error");
    expect(second.select("team-b").kind).toBe("error");
    expect(second.policies().map((p) => p.name)).toEqual(["baseline"]);
  });

  it("past the maximum age nothing in the snapshot decides (failure policy)", async () => {
    const { a, cfg, live } = await liveWithSnapshot(1);
    await live.stop();
    await a.stop();
    await new Promise((r) => setTimeout(r, 1100));
    const pv = await source(cfg, { snapshotOnly: true });
    const sel = pv.select("team-a");
    expect(sel.kind).toBe("error");
    expect(sel.kind === "error" && sel.message).toMatch(/older than its maximum age/);
    expect(pv.policiesInUse()).toEqual([]);
    expect(pv.defaultPolicy()).toBeUndefined();
    expect(pv.status().ready).toBe(false);
    // Exempt namespaces keep their exemption.
    expect(pv.select("kube-system").kind).toBe("exempt");
  });

  it("refuses a snapshot that is edited, torn, or readable by others", async () => {
    const { cfg, live } = await liveWithSnapshot();
    const file = cfg.policy.snapshotPath;
    await live.stop();
    const good = readFileSync(file, "utf8");
    // Widening attempt: point team-a at the baseline policy.
    writeFileSync(file, good.replace('"tollgate.dev/policy":"strict"', '"tollgate.dev/policy":"baseline"'));
    expect(() => readSnapshot(file)).toThrow(/checksum mismatch/);
    writeFileSync(file, good.slice(0, good.length / 2));
    expect(() => readSnapshot(file)).toThrow(/not valid JSON/);
    writeFileSync(file, good);
    chmodSync(file, 0o644);
    expect(() => readSnapshot(file)).toThrow(/accessible to group or others/);
    await expect(source(cfg, { snapshotOnly: true })).rejects.toThrow(/accessible to group or others/);
  });
});
