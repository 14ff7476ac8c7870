// The agent end to end on a real containerd 2.1.9 + runc: the pull verifier binary in
// containerd's bin_dir, the agent connected to the NRI socket, a real registry behind a
// counting proxy, images signed with the real cosign CLI, the file policy source.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { AgentStatus } from "../src/agent-api/types.js";
import { type CountingProxy, startCountingProxy } from "../test/agent/counting-proxy.js";
import { type PushedImage, pushBusyboxImage } from "../test/support/images.js";
import { type Daemon, startDaemon, waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../test/support/signing.js";
import { repoRoot } from "../test/support/tools.js";
import { agentApiGet, startAgentNode } from "./lib/agent-node.js";
import type { Containerd } from "./lib/containerd.js";
import { CriError, type Pod } from "./lib/cri.js";
import { buildBusyboxArchive } from "./lib/images.js";

const NRI_TIMEOUT_MS = 2000;

let work: string;
let registry: LocalRegistry;
let proxy: CountingProxy;
let ctrd: Containerd;
let agent: Daemon | undefined;
let key1: CosignKeys;
let key2: CosignKeys;
let policyDir: string;
let configPath: string;
let apiSocket: string;
const img: Record<string, PushedImage> = {};
let podSeq = 0;

function agentLog(): string {
  return agent ? readFileSync(agent.logFile, "utf8") : "";
}

function logRecords(): Array<Record<string, unknown>> {
  return agentLog()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Every agent log line, checked for keys pino would repeat (a child re-binding a base key). */
function assertNoDuplicateLogKeys(): void {
  for (const line of agentLog()
    .split("\n")
    .filter((l) => l.startsWith("{"))) {
    for (const k of ["component", "service"]) {
      const n = line.match(new RegExp(`[{,]"${k}":`, "g"))?.length ?? 0;
      expect(n, `${k} in ${line.slice(0, 200)}`).toBeLessThanOrEqual(1);
    }
  }
}

function decisions(pred: (r: Record<string, unknown>) => boolean = () => true) {
  return logRecords().filter((r) => r.audit === true && pred(r));
}

const getText = (p: string) => agentApiGet(apiSocket, p);

async function getStatus(): Promise<AgentStatus> {
  return JSON.parse(await getText("/v1/status")) as AgentStatus;
}

function policyDoc(name: string, key: CosignKeys, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name },
    spec: {
      verifiers: [{ name: "cosign", cosign: { keys: [{ name: "k", pem: key.publicKeyPem }] } }],
      cache: { positiveTTLSeconds: 600, negativeTTLSeconds: 600 },
      ...spec,
    },
  };
}

function basePolicies() {
  return [policyDoc("strict", key1), policyDoc("lax", key2)];
}

async function setPolicies(docs: unknown[], names: string[]) {
  writeYaml("policies.yaml", docs);
  await waitFor(
    `policies ${names.join(",")}`,
    async () => {
      const have = (await getStatus()).policies.map((p) => p.name).sort();
      return JSON.stringify(have) === JSON.stringify([...names].sort());
    },
    30_000,
  );
}

function nsDoc(name: string, annotations: Record<string, string>) {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, annotations } };
}

function writeYaml(file: string, docs: unknown[]) {
  const tmp = path.join(policyDir, `.${file}.tmp`);
  writeFileSync(tmp, docs.map((d) => stringify(d)).join("---\n"));
  execFileSync("mv", [tmp, path.join(policyDir, file)]);
}

async function startAgent(): Promise<void> {
  agent = startDaemon(
    "agent",
    process.execPath,
    [path.join(repoRoot, "dist", "tollgate.mjs"), "agent", "--config", configPath],
    {
      logDir: work,
    },
  );
  await waitFor(
    "agent registered with NRI",
    async () => existsSync(apiSocket) && (await getStatus()).nri.state === "registered",
    60_000,
  );
}

async function newPod(namespace: string): Promise<Pod> {
  podSeq++;
  return ctrd.cri.runPodSandbox({ name: `p${podSeq}`, namespace, uid: `uid-${podSeq}` });
}

/** CreateContainer through CRI like kubelet; returns the id or the CRI error. */
async function create(pod: Pod, image: string): Promise<{ id?: string; error?: CriError; ms: number }> {
  const t = Date.now();
  try {
    const id = await ctrd.cri.createContainer(pod, { name: `c${++podSeq}`, image });
    return { id, ms: Date.now() - t };
  } catch (e) {
    if (e instanceof CriError) return { error: e, ms: Date.now() - t };
    throw e;
  }
}

function importUnsigned(name: string, marker: string) {
  const a = buildBusyboxArchive({ name, marker, dir: mkdtempSync(path.join(work, "img-")) });
  ctrd.ctr(["-n", "k8s.io", "images", "import", a.tarball]);
  return a;
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-agent-"));
  execFileSync(process.execPath, [path.join(repoRoot, "scripts", "build.mjs")], {
    cwd: repoRoot,
    stdio: "pipe",
  });
  registry = await startRegistry(path.join(work, "registry"));
  proxy = await startCountingProxy(registry.host);
  const h = proxy.host;
  key1 = await cosignGenerateKeyPair(path.join(work, "key1"));
  key2 = await cosignGenerateKeyPair(path.join(work, "key2"));
  for (const [n, marker] of [
    ["signed", "s1"],
    ["signed2", "s2"],
    ["unsigned", "u1"],
    ["lax-only", "l1"],
    ["tool", "t1"],
    ["storm", "st"],
    ["fallback-signed", "fs"],
    ["fallback-unsigned", "fu"],
  ] as const) {
    // Push and sign against the registry itself (crane/cosign run synchronously and would
    // deadlock on the in-process proxy); containerd and the agent go through the proxy.
    const p = pushBusyboxImage(registry.host, `test/${n}`, "v1", { marker });
    img[n] = { ...p, repo: `${h}/test/${n}`, ref: `${h}/test/${n}:v1`, pinned: `${h}/test/${n}@${p.digest}` };
  }
  for (const n of ["signed", "signed2", "fallback-signed"])
    await cosignSign({ ref: img[n]!.pinned, keyDir: key1 });
  await cosignSign({ ref: img["lax-only"]!.pinned, keyDir: key2 });

  policyDir = path.join(work, "policies");
  mkdirSync(policyDir);
  // The source reports every loaded policy as in use, and under any-policy-in-use an
  // Audit-mode or fail-open policy lets pulls through: those are loaded only in the tests
  // that need them.
  writeYaml("policies.yaml", basePolicies());
  writeYaml("namespaces.yaml", [nsDoc("team-a", { "tollgate.dev/policy": "lax" }), nsDoc("team-b", {})]);

  ({ ctrd, configPath, apiSocket } = await startAgentNode({
    work,
    policyDir,
    nriTimeoutMs: NRI_TIMEOUT_MS,
    perVerifierTimeout: "10s",
    defaultPolicy: "strict",
    exemptNamespaces: ["infra"],
    exemptImages: [`${h}/test/tool:v1`],
    pullVerifierTimeoutMs: 8000,
  }));
  await startAgent();
}, 300_000);

afterAll(async () => {
  await agent?.stop();
  await ctrd?.stop();
  await proxy?.stop();
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("tollgate agent on containerd", () => {
  it("a signed image pulls and runs", async () => {
    await ctrd.cri.pullImage(img.signed!.ref);
    const pod = await newPod("team-b");
    const c = await create(pod, img.signed!.ref);
    expect(c.error).toBeUndefined();
    await ctrd.cri.startContainer(c.id!);
    await ctrd.cri.waitForLog(c.id!, "hello from test/signed:v1");
    const d = decisions(
      (r) => r.event === "create" && r.namespace === "team-b" && r.image === img.signed!.ref,
    );
    expect(d).toHaveLength(1);
    expect(d[0]).toMatchObject({ result: "allow", kind: "verified", digest: img.signed!.digest });
  });

  it("an unsigned image is blocked at pull with our reason in the CRI error", async () => {
    const err = await ctrd.cri.pullImage(img.unsigned!.ref).then(
      () => undefined,
      (e: unknown) => e as CriError,
    );
    expect(err).toBeInstanceOf(CriError);
    expect(err!.details).toContain("image verifier bindir blocked pull");
    expect(err!.details).toContain(`tollgate: denied ${img.unsigned!.ref} (${img.unsigned!.digest})`);
    // A pull has no namespace: with two policies in use the text names neither tenant's policy.
    expect(err!.details).toContain("no policy in use on this node allows it (2 policies checked");
    expect(err!.details).not.toMatch(/"strict"|"lax"/);
    expect(await ctrd.cri.imageStatus(img.unsigned!.ref)).toBeUndefined();
  });

  it("a pre-existing unsigned image (ctr import, no pull) is denied at CreateContainer", async () => {
    const a = importUnsigned(`${proxy.host}/test/imported:v1`, "imported");
    const pod = await newPod("team-b");
    const c = await create(pod, a.name);
    expect(c.error?.details).toContain("code = PermissionDenied");
    expect(c.error?.details).toContain(
      `tollgate: denied ${a.name} (${a.digest}) in namespace "team-b" by policy "strict"`,
    );
  });

  it("cross-tenant: pulled for lax team-a, denied in strict team-b, allowed again in team-a", async () => {
    const ref = img["lax-only"]!.ref;
    await ctrd.cri.pullImage(ref); // any-policy-in-use: "lax" accepts key2
    const a1 = await create(await newPod("team-a"), ref);
    expect(a1.error).toBeUndefined();
    const b = await create(await newPod("team-b"), ref);
    expect(b.error?.details).toContain(`in namespace "team-b" by policy "strict"`);
    const a2 = await create(await newPod("team-a"), ref);
    expect(a2.error).toBeUndefined();
  });

  it("retry storm: 100 denied CreateContainer attempts cause at most one verification at the registry", async () => {
    const a = importUnsigned(`${proxy.host}/test/storm-imported:v1`, "storm");
    const hex = a.digest.slice("sha256:".length);
    const forDigest = () => proxy.count((r) => r.path.includes(hex));
    expect(forDigest()).toBe(0);
    const pod = await newPod("team-b");
    const first = await create(pod, a.name);
    expect(first.error?.details).toContain("PermissionDenied");
    const afterOne = forDigest();
    expect(afterOne).toBeGreaterThan(0);
    for (let i = 0; i < 99; i++) {
      const r = await create(pod, a.name);
      expect(r.error?.details).toContain("PermissionDenied");
    }
    expect(forDigest()).toBe(afterOne);
    const cached = decisions((r) => r.event === "create" && r.digest === a.digest && r.source === "cache");
    expect(cached.length).toBe(99);
  });

  it("deadline: with the registry hung, every CreateContainer is answered in time (Closed denies, Open allows) and the plugin stays registered", async () => {
    writeYaml("namespaces.yaml", [
      nsDoc("team-a", { "tollgate.dev/policy": "lax" }),
      nsDoc("team-b", {}),
      nsDoc("open-ns", { "tollgate.dev/policy": "open" }),
    ]);
    await setPolicies(
      [...basePolicies(), policyDoc("open", key1, { failurePolicy: "Open" })],
      ["strict", "lax", "open"],
    );
    const closedImg = importUnsigned(`${proxy.host}/test/hang-closed:v1`, "hang-closed");
    const openImg = importUnsigned(`${proxy.host}/test/hang-open:v1`, "hang-open");
    proxy.hang = true;
    try {
      const podB = await newPod("team-b");
      const podO = await newPod("open-ns");
      for (let i = 0; i < 3; i++) {
        const c = await create(podB, closedImg.name);
        expect(c.error?.details).toContain("PermissionDenied");
        expect(c.error?.details).toContain("create-time budget");
        const o = await create(podO, openImg.name);
        expect(o.error).toBeUndefined();
      }
      const open = decisions((r) => r.event === "create" && r.digest === openImg.digest);
      expect(open.length).toBe(3);
      for (const r of open) expect(r).toMatchObject({ result: "allow", kind: "failed", source: "budget" });
      expect((await getStatus()).nri.state).toBe("registered");
      expect(readFileSync(ctrd.logFile, "utf8")).not.toMatch(/closing plugin .*tollgate/);
    } finally {
      proxy.hang = false;
    }
    await setPolicies(basePolicies(), ["strict", "lax"]);
  });

  it("audit mode, break-glass (valid, then expired), exempt namespace and exempt image", async () => {
    const until = new Date(Date.now() + 20_000).toISOString().replace(/\.\d+Z$/, "Z");
    writeYaml("namespaces.yaml", [
      nsDoc("team-a", { "tollgate.dev/policy": "lax" }),
      nsDoc("team-b", {}),
      nsDoc("audit-ns", { "tollgate.dev/policy": "watch" }),
      nsDoc("bg-ns", { "tollgate.dev/break-glass": until, "tollgate.dev/break-glass-reason": "incident 42" }),
    ]);
    await setPolicies(
      [...basePolicies(), policyDoc("watch", key1, { mode: "Audit" })],
      ["strict", "lax", "watch"],
    );
    const a = importUnsigned(`${proxy.host}/test/misc:v1`, "misc");

    const audit = await create(await newPod("audit-ns"), a.name);
    expect(audit.error).toBeUndefined();
    expect(decisions((r) => r.namespace === "audit-ns" && r.event === "create")[0]).toMatchObject({
      result: "allow",
      kind: "audit",
    });

    const bgPod = await newPod("bg-ns");
    const bg = await create(bgPod, a.name);
    expect(bg.error).toBeUndefined();
    expect(decisions((r) => r.namespace === "bg-ns")[0]).toMatchObject({
      result: "allow",
      kind: "break-glass",
    });

    const ex = await create(await newPod("infra"), a.name);
    expect(ex.error).toBeUndefined();
    expect(decisions((r) => r.namespace === "infra")[0]).toMatchObject({ result: "allow", kind: "exempt" });

    // Exempt image: unsigned, passes the pull and CreateContainer in a strict namespace.
    await ctrd.cri.pullImage(img.tool!.ref);
    const tool = await create(await newPod("team-b"), img.tool!.ref);
    expect(tool.error).toBeUndefined();

    await waitFor("break-glass expiry", () => Date.now() > Date.parse(until) + 1000, 60_000);
    const expired = await create(bgPod, a.name);
    expect(expired.error?.details).toContain("PermissionDenied");

    // An Audit-mode policy in use allows every pull under any-policy-in-use; take it out of
    // use so the next test sees strict pull-time answers again.
    writeYaml("namespaces.yaml", [nsDoc("team-a", { "tollgate.dev/policy": "lax" }), nsDoc("team-b", {})]);
    await setPolicies(basePolicies(), ["strict", "lax"]);
  });

  it("agent killed: the pull verifier decides in-process; an unsigned container created meanwhile is reported by the Synchronize audit after restart", async () => {
    await agent!.stop("SIGKILL");
    expect(existsSync(apiSocket)).toBe(true); // stale socket, nobody listening
    await ctrd.cri.pullImage(img["fallback-signed"]!.ref);
    const err = await ctrd.cri.pullImage(img["fallback-unsigned"]!.ref).then(
      () => undefined,
      (e: unknown) => e as CriError,
    );
    expect(err?.details).toContain(`tollgate: denied ${img["fallback-unsigned"]!.ref}`);

    // NRI is fail-open: without the plugin an unsigned image starts in a strict namespace.
    const a = importUnsigned(`${proxy.host}/test/sneaked:v1`, "sneaked");
    const pod = await newPod("team-b");
    const c = await create(pod, a.name);
    expect(c.error).toBeUndefined();
    await ctrd.cri.startContainer(c.id!);

    await startAgent();
    await waitFor(
      "synchronize audit",
      async () => (await getStatus()).nri.lastSyncAudit !== undefined,
      60_000,
    );
    const s = await getStatus();
    const bad = s.nri.lastSyncAudit!.nonCompliant.find((x) => x.id === c.id);
    expect(bad).toMatchObject({ namespace: "team-b", image: a.name });
    expect(bad!.reason).toContain(`tollgate: denied ${a.name} (${a.digest})`);
    expect(agentLog()).toContain("non-compliant running container");
    const metrics = await getText("/metrics");
    expect(metrics).toMatch(/^tollgate_nri_connected 1$/m);
    // The TCP listener (shipped on 0.0.0.0) serves metrics and health only: the status names
    // every tenant's policies and this non-compliant pod.
    const listen = logRecords().findLast((r) => r.msg === "metrics and health listening")?.listen as string;
    expect(listen).toMatch(/^127\.0\.0\.1:\d+$/);
    const tcp = async (p: string) => {
      const r = await fetch(`http://${listen}${p}`);
      return { status: r.status, body: await r.text() };
    };
    expect((await tcp("/metrics")).status).toBe(200);
    expect((await tcp("/healthz")).status).toBe(200);
    const st = await tcp("/v1/status");
    expect(st.status).toBe(404);
    expect(st.body).not.toContain("team-b");
    expect((await tcp("/v1/pull-verdict")).status).toBe(404);
    assertNoDuplicateLogKeys();
    expect(metrics).toMatch(/^tollgate_noncompliant_containers [1-9]/m);
    expect(metrics).toMatch(
      /^tollgate_decisions_total\{event="sync",result="deny",kind="rejected",mode="Enforce",policy="strict",source="(cache|verify)"\} [1-9]/m,
    );
  });
});
