// Cluster safety end to end on the real containerd 2.1.9 + runc, with the ENFORCE OVERLAY's
// agent configuration (rendered by `kubectl kustomize deploy/overlays/enforce`; only the
// node's socket paths, the kubeconfig, the snapshot path and the registry hosts dir are
// replaced) and the kubernetes policy source against the in-test API server, which holds
// the overlay's own ImagePolicy and trust ConfigMap (with a real key instead of the
// placeholder).
//   - system components: images standing in for kube-proxy and coredns are served under
//     registry.k8s.io (a containerd hosts.toml mirror to the local registry), unsigned;
//     they pull and start in kube-system, and another namespace still cannot start them;
//   - a tenant's unsigned pull is denied; break-glass runs an unsigned hotfix end to end
//     in its namespace while another namespace cannot start it;
//   - agent killed: the verifier's fallback decides from the policy snapshot;
//   - agent restarted with the API server down: the gate decides from the snapshot;
//   - snapshot older than its maximum age: the failure policy applies.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import type { AgentStatus } from "../src/agent-api/types.js";
import { ContainerState } from "../src/gen/cri.js";
import { FakeApiServer, type KObject, kubeConfigFor } from "../test/support/fake-apiserver.js";
import { type PushedImage, pushBusyboxImage } from "../test/support/images.js";
import { findKubectl } from "../test/support/kubectl.js";
import { type Daemon, startDaemon, waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../test/support/signing.js";
import { repoRoot } from "../test/support/tools.js";
import { agentApiGet, startAgentNode } from "./lib/agent-node.js";
import type { Containerd } from "./lib/containerd.js";
import { CriError, criErrorOf, type Pod } from "./lib/cri.js";
import { buildBusyboxArchive } from "./lib/images.js";

type Obj = Record<string, any>; // biome-ignore lint/suspicious/noExplicitAny: rendered manifests

let work: string;
let registry: LocalRegistry;
let api: FakeApiServer;
let ctrd: Containerd;
let agent: Daemon | undefined;
let key: CosignKeys;
let configPath: string;
let apiSocket: string;
let overlayConfig: Record<string, Record<string, unknown>>;
let nodeConfig: Record<string, Record<string, unknown>>;
const img: Record<string, PushedImage> = {};
let seq = 0;
let hotfixContainer = "";

function renderOverlay(): Obj[] {
  const kubectl = findKubectl();
  if (!kubectl)
    throw new Error("kubectl is needed to render deploy/overlays/enforce (scripts/install-deps.sh)");
  const out = execFileSync(kubectl, ["kustomize", path.join(repoRoot, "deploy", "overlays", "enforce")], {
    encoding: "utf8",
  });
  return parseAllDocuments(out).map((d) => d.toJS() as Obj);
}

const get = (p: string) => agentApiGet(apiSocket, p);
type Status = AgentStatus & { policySource: { sync: { state: string } } };
const status = async () => JSON.parse(await get("/v1/status")) as Status;

function audit(pred: (r: Record<string, unknown>) => boolean): Array<Record<string, unknown>> {
  if (!agent) return [];
  return readFileSync(agent.logFile, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r.audit === true && pred(r));
}

async function startAgent(waitState: "synced" | "snapshot" | "any" = "synced"): Promise<void> {
  agent = startDaemon(
    "agent",
    process.execPath,
    [path.join(repoRoot, "dist", "tollgate.mjs"), "agent", "--config", configPath],
    { logDir: mkdtempSync(path.join(work, "agent-")) },
  );
  await waitFor(
    `agent registered (policy source ${waitState})`,
    async () => {
      if (!existsSync(apiSocket)) return false;
      const s = await status();
      return s.nri.state === "registered" && (waitState === "any" || s.policySource.sync.state === waitState);
    },
    60_000,
  );
}

async function stopAgent(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  await agent?.stop(signal);
  agent = undefined;
}

function writeNodeConfig(over: (c: Record<string, Record<string, unknown>>) => void = () => {}) {
  const c = structuredClone(nodeConfig);
  over(c);
  // Same file the verifier reads (TOLLGATE_CONFIG in containerd's environment).
  const cur = parse(readFileSync(configPath, "utf8")) as Record<string, Record<string, unknown>>;
  writeFileSync(
    configPath,
    stringify({ ...c, nri: { ...c.nri, socket: cur.nri!.socket }, containerd: cur.containerd, api: cur.api }),
  );
}

async function pod(namespace: string): Promise<Pod> {
  seq++;
  return ctrd.cri.runPodSandbox({ name: `p${seq}`, namespace, uid: `uid-${seq}` });
}

const pull = (ref: string) => criErrorOf(ctrd.cri.pullImage(ref));

async function create(p: Pod, image: string): Promise<{ id?: string; error?: CriError }> {
  try {
    return { id: await ctrd.cri.createContainer(p, { name: `c${++seq}`, image }) };
  } catch (e) {
    if (e instanceof CriError) return { error: e };
    throw e;
  }
}

function push(name: string, repo: string, host = registry.host, signed = false) {
  const p = pushBusyboxImage(registry.host, repo, "v1", { marker: name });
  img[name] = { ...p, ref: `${host}/${repo}:v1`, pinned: `${host}/${repo}@${p.digest}` };
  return signed;
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-cluster-"));
  execFileSync(process.execPath, [path.join(repoRoot, "scripts", "build.mjs")], {
    cwd: repoRoot,
    stdio: "pipe",
  });
  const rendered = renderOverlay();
  const cm = rendered.find((o) => o.kind === "ConfigMap" && o.metadata.name === "tollgate-agent")!;
  overlayConfig = parse(cm.data["agent.yaml"]) as Record<string, Record<string, unknown>>;

  registry = await startRegistry(path.join(work, "registry"));
  key = await cosignGenerateKeyPair(path.join(work, "key"));
  // System components, served as registry.k8s.io/... through containerd's mirror config.
  push("kube-proxy", "kube-proxy");
  push("coredns", "coredns/coredns");
  for (const n of ["signed", "signed-fallback", "signed-late"]) {
    push(n, `tenant/${n}`);
    await cosignSign({ ref: img[n]!.pinned, keyDir: key });
  }
  for (const n of ["unsigned", "hotfix", "unsigned-fallback", "unsigned-late"]) push(n, `tenant/${n}`);
  for (const n of ["kube-proxy", "coredns"]) {
    const repo = n === "coredns" ? "coredns/coredns" : n;
    img[n] = {
      ...img[n]!,
      ref: `registry.k8s.io/${repo}:v1`,
      pinned: `registry.k8s.io/${repo}@${img[n]!.digest}`,
    };
  }
  const hostsDir = path.join(work, "certs.d");
  mkdirSync(path.join(hostsDir, "registry.k8s.io"), { recursive: true });
  writeFileSync(
    path.join(hostsDir, "registry.k8s.io", "hosts.toml"),
    `server = "https://registry.k8s.io"\n\n[host."http://${registry.host}"]\n  capabilities = ["pull", "resolve"]\n`,
  );

  // The in-test API server holds what the overlay applies: the default ImagePolicy and its
  // trust ConfigMap (our key instead of the placeholder), plus the cluster's namespaces.
  api = await FakeApiServer.start();
  for (const o of rendered) {
    if (o.kind === "ImagePolicy") api.apply("imagepolicies", o as KObject);
    if (o.kind === "ConfigMap" && o.metadata.namespace === "tollgate-trust")
      api.apply("configmaps", {
        ...o,
        data: Object.fromEntries(Object.keys(o.data).map((k) => [k, key.publicKeyPem])),
      } as unknown as KObject);
  }
  for (const ns of ["kube-system", "tollgate-system", "tollgate-trust", "team-b", "hotfix"])
    api.apply("namespaces", { metadata: { name: ns, annotations: {} } });
  const kubeconfig = path.join(work, "kubeconfig");
  writeFileSync(kubeconfig, kubeConfigFor(api.url).exportConfig());

  nodeConfig = structuredClone(overlayConfig);
  nodeConfig.policy = {
    ...nodeConfig.policy,
    kubeconfig,
    snapshotPath: path.join(work, "state", "policy-snapshot.json"),
  };
  nodeConfig.registry = { ...nodeConfig.registry, certsDir: hostsDir };
  nodeConfig.nri = { ...nodeConfig.nri, statePath: path.join(work, "state", "nri-containers.json") };
  nodeConfig.metrics = { listen: "127.0.0.1:0" };
  ({ ctrd, configPath, apiSocket } = await startAgentNode({
    work,
    policyDir: path.join(work, "unused"),
    nriTimeoutMs: 2000,
    perVerifierTimeout: "10s",
    defaultPolicy: "default",
    pullVerifierTimeoutMs: 8000,
    wholeAgentConfig: nodeConfig,
    registryCertsDir: hostsDir,
  }));
  await startAgent();
}, 300_000);

afterAll(async () => {
  await stopAgent();
  await ctrd?.stop();
  await api?.stop();
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("cluster safety with the enforce overlay's configuration", () => {
  it("the overlay's configuration is what runs: kubernetes source, exempt kube-system, registry.k8s.io for exempt namespaces", () => {
    expect(overlayConfig.policy).toMatchObject({
      source: "kubernetes",
      exemptNamespaces: expect.arrayContaining(["kube-system"]),
      exemptNamespaceImages: ["registry.k8s.io/**"],
    });
    expect(overlayConfig.pullVerifier).toMatchObject({ failurePolicy: "Closed" });
  });

  it("system components (unsigned, from registry.k8s.io) pull and start in kube-system; another namespace cannot start them", async () => {
    for (const n of ["kube-proxy", "coredns"]) {
      expect(await pull(img[n]!.ref), n).toBeUndefined();
      const p = await pod("kube-system");
      const c = await create(p, img[n]!.ref);
      expect(c.error, n).toBeUndefined();
      await ctrd.cri.startContainer(c.id!);
      await ctrd.cri.waitForLog(c.id!, `hello from ${n === "coredns" ? "coredns/coredns" : n}:v1`);
    }
    const pulls = audit((r) => r.event === "pull" && r.image === img["kube-proxy"]!.ref);
    expect(pulls[0]).toMatchObject({ result: "allow", kind: "exempt" });
    const tenant = await create(await pod("team-b"), img["kube-proxy"]!.ref);
    expect(tenant.error?.details).toContain("code = PermissionDenied");
    expect(tenant.error?.details).toContain(`in namespace "team-b" by policy "default"`);
  });

  it("a tenant's unsigned pull is denied; a signed one pulls and runs", async () => {
    const err = await pull(img.unsigned!.ref);
    expect(err?.details).toContain(`tollgate: denied ${img.unsigned!.ref}`);
    expect(await ctrd.cri.imageStatus(img.unsigned!.ref)).toBeUndefined();
    expect(await pull(img.signed!.ref)).toBeUndefined();
    const c = await create(await pod("team-b"), img.signed!.ref);
    expect(c.error).toBeUndefined();
  });

  it("visible in kubectl: denials are one aggregated Event on the pod; the agent writes the policy's status", async () => {
    // kubelet retries a denied create under the same container name: one Event counts them.
    const p = await pod("team-b");
    for (let i = 0; i < 5; i++) {
      const err = await criErrorOf(
        ctrd.cri.createContainer(p, { name: "app", image: img["kube-proxy"]!.ref }),
      );
      expect(err?.details).toContain("code = PermissionDenied");
    }
    const mine = () =>
      api
        .list("events", "team-b")
        .filter((e) => (e.involvedObject as { uid?: string }).uid === p.config.metadata!.uid);
    await waitFor("the Event counts 5 denials", () => mine()[0]?.count === 5, 30_000);
    expect(mine()).toHaveLength(1);
    const ev = mine()[0]!;
    // The reason follows the decision's kind (rejected, or failed under failurePolicy Closed).
    const rec = audit(
      (r) => r.event === "create" && (r.container as { pod?: string })?.pod === p.config.metadata!.name,
    ).at(-1)!;
    expect(rec).toMatchObject({ result: "deny", namespace: "team-b" });
    expect(ev).toMatchObject({
      type: "Warning",
      reason: rec.kind === "failed" ? "ImageVerificationFailed" : "ImagePolicyDenied",
      involvedObject: { kind: "Pod", name: p.config.metadata!.name, namespace: "team-b" },
      metadata: { annotations: { "tollgate.dev/policy": "default" } },
    });
    expect(String(ev.message)).toContain(img["kube-proxy"]!.digest);
    expect(api.writes("events").length).toBeLessThanOrEqual(3);

    // The only agent holds the status Lease and wrote the default policy's status.
    await waitFor("status written", () => api.get("imagepolicies", "default")?.status !== undefined, 30_000);
    const st = api.get("imagepolicies", "default")!.status as { revision: string; conditions: unknown[] };
    const s = await status();
    expect(st.revision).toBe(s.policies.find((x) => x.name === "default")!.revision);
    expect(st.conditions).toContainEqual(
      expect.objectContaining({ type: "Ready", status: "True", reason: "Accepted" }),
    );
  });

  it("break-glass runs an unsigned hotfix end to end in its namespace; another namespace still cannot start it", async () => {
    const until = new Date(Date.now() + 3600_000).toISOString();
    api.modify("namespaces", "hotfix", undefined, (o) => {
      o.metadata.annotations = {
        "tollgate.dev/break-glass": until,
        "tollgate.dev/break-glass-reason": "INC-7 hotfix",
      };
    });
    await waitFor("break-glass seen", async () => (await pull(img.hotfix!.ref)) === undefined, 20_000);
    const pd = audit((r) => r.event === "pull" && r.image === img.hotfix!.ref && r.result === "allow");
    expect(pd.at(-1)).toMatchObject({ kind: "break-glass" });
    expect(String(pd.at(-1)!.msg)).toContain('admitted for namespace "hotfix" under break-glass');
    expect(JSON.stringify(pd.at(-1)!.notes)).toContain("INC-7 hotfix");

    const c = await create(await pod("hotfix"), img.hotfix!.ref);
    expect(c.error).toBeUndefined();
    hotfixContainer = c.id!;
    await ctrd.cri.startContainer(c.id!);
    await ctrd.cri.waitForLog(c.id!, "hello from tenant/hotfix:v1");
    expect(
      audit((r) => r.event === "create" && r.image === img.hotfix!.ref && r.namespace === "hotfix")[0],
    ).toMatchObject({
      result: "allow",
      kind: "break-glass",
    });
    const other = await create(await pod("team-b"), img.hotfix!.ref);
    expect(other.error?.details).toContain(`tollgate: denied ${img.hotfix!.ref}`);
    expect(other.error?.details).toContain('in namespace "team-b"');

    // Break-glass over: the hotfix namespace is back under its policy.
    api.modify("namespaces", "hotfix", undefined, (o) => {
      o.metadata.annotations = {};
    });
    await waitFor(
      "break-glass removed",
      async () => (await create(await pod("hotfix"), img.hotfix!.ref)).error !== undefined,
      20_000,
    );
  });

  it("agent killed: the verifier's fallback decides from the snapshot (signed pulls, unsigned denied)", async () => {
    // The snapshot follows the source: the ended break-glass is gone from it too.
    const snap = String(nodeConfig.policy!.snapshotPath);
    await waitFor(
      "snapshot without the break-glass",
      () => !readFileSync(snap, "utf8").includes("break-glass"),
      10_000,
    );
    await stopAgent("SIGKILL");
    expect(await pull(img["signed-fallback"]!.ref)).toBeUndefined();
    const err = await pull(img["unsigned-fallback"]!.ref);
    expect(err?.details).toContain(`tollgate: denied ${img["unsigned-fallback"]!.ref}`);
    expect(err?.details).toContain('"default"');
    // System components still pull with no agent at all.
    await ctrd.cri.removeImage(img.coredns!.ref);
    expect(await pull(img.coredns!.ref)).toBeUndefined();
  });

  it("agent restarted while the API server is down: the gate decides from the snapshot", async () => {
    await api.stop();
    await startAgent("snapshot");
    const ok = await create(await pod("team-b"), img["signed-fallback"]!.ref);
    expect(ok.error).toBeUndefined();
    const a = buildBusyboxArchive({
      name: `${registry.host}/tenant/sneaked:v1`,
      marker: "sn",
      dir: mkdtempSync(path.join(work, "img-")),
    });
    ctrd.ctr(["-n", "k8s.io", "images", "import", a.tarball]);
    const bad = await create(await pod("team-b"), a.name);
    expect(bad.error?.details).toContain(`tollgate: denied ${a.name}`);
    expect(bad.error?.details).toContain('by policy "default"');
  });

  it("snapshot older than its maximum age: the failure policy applies (pulls and creates)", async () => {
    await stopAgent();
    writeNodeConfig((c) => {
      c.policy = { ...c.policy, snapshotMaxAgeSeconds: 1 };
    });
    await new Promise((r) => setTimeout(r, 1500));
    const err = await pull(img["signed-late"]!.ref);
    expect(err?.details).toMatch(/older than its maximum age.*failure policy Closed/);
    // Exempt images still pull.
    await ctrd.cri.removeImage(img["kube-proxy"]!.ref);
    expect(await pull(img["kube-proxy"]!.ref)).toBeUndefined();
    await startAgent("any");
    const c = await create(await pod("team-b"), img["signed-fallback"]!.ref);
    expect(c.error?.details).toContain("older than its maximum age");
    // kube-system is exempt whatever the snapshot's age.
    expect((await create(await pod("kube-system"), img["kube-proxy"]!.ref)).error).toBeUndefined();

    // The API server back: the agent syncs and decides from the live state again.
    await api.listen();
    await waitFor("live sync", async () => (await status()).policySource.sync.state === "synced", 30_000);
    expect((await create(await pod("team-b"), img["signed-fallback"]!.ref)).error).toBeUndefined();
  });

  it("evictOnSync: an unsigned container created while the agent was away is stopped through CRI, audited; exempt untouched", async () => {
    await stopAgent();
    writeNodeConfig((c) => {
      c.nri = { ...c.nri, evictOnSync: true, evictGracePeriodSeconds: 1 };
    });
    // NRI is fail-open: with no plugin, containerd creates and starts these.
    const a = buildBusyboxArchive({
      name: `${registry.host}/tenant/gap:v1`,
      marker: "gap",
      dir: mkdtempSync(path.join(work, "img-")),
    });
    ctrd.ctr(["-n", "k8s.io", "images", "import", a.tarball]);
    const tenant = await create(await pod("team-b"), a.name);
    expect(tenant.error).toBeUndefined();
    await ctrd.cri.startContainer(tenant.id!);
    const sys = await create(await pod("kube-system"), a.name);
    expect(sys.error).toBeUndefined();
    await ctrd.cri.startContainer(sys.id!);

    await startAgent("synced");
    await waitFor(
      "gap container stopped",
      async () => (await ctrd.cri.containerStatus(tenant.id!)).state === ContainerState.CONTAINER_EXITED,
      60_000,
    ).catch((e) => {
      const log = readFileSync(agent!.logFile, "utf8").split("\n");
      console.log(
        log
          .filter((l) => /evict|synchronize audit/i.test(l))
          .join("\n")
          .slice(-4000),
      );
      throw e;
    });
    // The record is written once CRI StopContainer returned: it may trail the exited state.
    const evictOf = (id: string) =>
      audit((r) => r.event === "evict" && (r.container as { id?: string })?.id === id);
    await waitFor("evict audit record", () => evictOf(tenant.id!).length > 0, 15_000);
    const rec = evictOf(tenant.id!);
    expect(rec).toHaveLength(1);
    expect(rec[0]).toMatchObject({
      result: "stopped",
      namespace: "team-b",
      image: a.name,
      gracePeriodSeconds: 1,
    });
    expect(String(rec[0]!.msg)).toContain(`tollgate: denied ${a.name}`);
    expect(String(rec[0]!.msg)).toContain('by policy "default"');
    // Gated earlier and non-compliant only since its break-glass ended: reported, not stopped.
    expect((await ctrd.cri.containerStatus(hotfixContainer)).state).toBe(ContainerState.CONTAINER_RUNNING);
    expect(
      audit((r) => r.event === "evict" && (r.container as { id?: string })?.id === hotfixContainer),
    ).toEqual([]);
    // The exempt namespace's container keeps running and was never a candidate.
    expect((await ctrd.cri.containerStatus(sys.id!)).state).toBe(ContainerState.CONTAINER_RUNNING);
    expect(audit((r) => r.event === "evict" && (r.container as { id?: string })?.id === sys.id)).toEqual([]);
    const m = await get("/metrics");
    expect(m).toMatch(/^tollgate_evictions_total\{result="stopped"\} 1$/m);
  });
});
