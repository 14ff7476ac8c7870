// Attestation policies end to end on a real containerd 2.1.9 + runc: the pull verifier in
// bin_dir and the agent's NRI gate, a real registry, images signed and attested with the real
// `cosign attest` 3.1.1 (key-based; bundle referrers and the legacy .att tag), the file
// policy source. Two namespaces ask for different builders; a third policy's condition reads
// request.namespace (one verification, allowed in one namespace and denied in another, and a
// pull admitted only while a namespace that could run the image uses the policy).
// (A cached allow expiring with the scan age is shown with an injected clock in
// test/engine/attest.integration.test.ts.)
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { attestationPolicy, pushAttestedImages, type ScenarioImage } from "../test/support/attestations.js";
import type { PushedImage } from "../test/support/images.js";
import { type Daemon, startDaemon, waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { type CosignKeys, cosignGenerateKeyPair } from "../test/support/signing.js";
import { repoRoot } from "../test/support/tools.js";
import { agentStatus, startAgentNode, startAgentProcess } from "./lib/agent-node.js";
import type { Containerd } from "./lib/containerd.js";
import { CriError, type Pod } from "./lib/cri.js";

const BUILDER_A = "https://ci.team-a.example/builder";
const BUILDER_B = "https://ci.team-b.example/builder";
const BUILDER_C = "https://ci.team-c.example/builder";
const DAY = 86_400_000;

let work: string;
let registry: LocalRegistry;
let ctrd: Containerd;
let agent: Daemon | undefined;
let key: CosignKeys;
let apiSocket: string;
let img: Record<ScenarioImage, PushedImage>;
/** Built by BUILDER_C: only the per-namespace policy can allow them. */
let imgC: Record<"bundle" | "legacy", PushedImage>;
let policyDir: string;
let seq = 0;

function writeYaml(dir: string, file: string, docs: unknown[]) {
  const tmp = path.join(dir, `.${file}.tmp`);
  writeFileSync(tmp, docs.map((d) => stringify(d)).join("---\n"));
  execFileSync("mv", [tmp, path.join(dir, file)]);
}

/** team-a/b use builder-a/b; team-c's policy is `teamC`, team-d's always per-namespace. */
function writeNamespaces(teamC: string) {
  const ns = (name: string, policy: string) => ({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name, annotations: { "tollgate.dev/policy": policy } },
  });
  writeYaml(policyDir, "namespaces.yaml", [
    ns("team-a", "builder-a"),
    ns("team-b", "builder-b"),
    ns("team-c", teamC),
    ns("team-d", "per-namespace"),
  ]);
}

async function pullError(ref: string): Promise<string | undefined> {
  try {
    await ctrd.cri.pullImage(ref);
    return undefined;
  } catch (e) {
    if (e instanceof CriError) return e.details;
    throw e;
  }
}

async function create(namespace: string, ref: string): Promise<{ id?: string; error?: string }> {
  seq++;
  const pod: Pod = await ctrd.cri.runPodSandbox({ name: `p${seq}`, namespace, uid: `uid-${seq}` });
  try {
    return { id: await ctrd.cri.createContainer(pod, { name: `c${seq}`, image: ref }) };
  } catch (e) {
    if (e instanceof CriError) return { error: e.details };
    throw e;
  }
}

/** Brings an image onto the node without the transfer service (so without our pull verifier). */
function pullAround(ref: string) {
  ctrd.ctr(["-n", "k8s.io", "images", "pull", "--local", "--plain-http", ref]);
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-attest-"));
  execFileSync(process.execPath, [path.join(repoRoot, "scripts", "build.mjs")], {
    cwd: repoRoot,
    stdio: "pipe",
  });
  registry = await startRegistry(path.join(work, "registry"));
  key = await cosignGenerateKeyPair(path.join(work, "key"));
  img = (await pushAttestedImages({
    registryHost: registry.host,
    place: (n) => [`attest/${n}`, "v1"],
    key,
    rogue: await cosignGenerateKeyPair(path.join(work, "rogue")),
    builder: BUILDER_A,
    scanAt: new Date(Date.now() - DAY),
  })) as Record<ScenarioImage, PushedImage>;
  imgC = await pushAttestedImages({
    registryHost: registry.host,
    place: (n) => [`attest-ns/${n}`, "v1"],
    key,
    rogue: key,
    builder: BUILDER_C,
    scanAt: new Date(Date.now() - DAY),
    only: ["bundle", "legacy"],
  });

  policyDir = path.join(work, "policies");
  mkdirSync(policyDir);
  writeYaml(policyDir, "policies.yaml", [
    attestationPolicy("builder-a", key.publicKeyPem, BUILDER_A),
    attestationPolicy("builder-b", key.publicKeyPem, BUILDER_B),
    attestationPolicy("per-namespace", key.publicKeyPem, BUILDER_C, {
      conditions: [{ expression: `request.namespace == "team-c"`, message: "runs only in team-c" }],
    }),
  ]);
  writeNamespaces("per-namespace");
  const node = await startAgentNode({
    work,
    policyDir,
    nriTimeoutMs: 2000,
    perVerifierTimeout: "10s",
    defaultPolicy: "builder-a",
    pullVerifierTimeoutMs: 8000,
  });
  ctrd = node.ctrd;
  agent = await startAgentProcess(node, work);
  await waitFor(
    "policies loaded",
    async () => (await agentStatus(node.apiSocket)).policies.length === 3,
    30_000,
  );
}, 300_000);

afterAll(async () => {
  await agent?.stop();
  await ctrd?.stop();
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("attestation policies on containerd", () => {
  it.each(["bundle", "legacy"] as const)(
    "provenance from the allowed builder and source (%s format) pulls and runs",
    async (n) => {
      expect(await pullError(img[n].ref)).toBeUndefined();
      const c = await create("team-a", img[n].ref);
      expect(c.error).toBeUndefined();
      await ctrd.cri.startContainer(c.id!);
      await ctrd.cri.waitForLog(c.id!, `hello from attest/${n}:v1`);
    },
  );

  const P = "attestation provenance (https://slsa.dev/provenance/v1): ";
  it.each([
    ["otherbuilder", `${P}condition "built by ${BUILDER_A}" is false`],
    ["missing", `${P}no https://slsa.dev/provenance/v1 attestation found`],
    ["transplant", `${P}the signed statement names sha256:`],
    ["untrusted", "is not signed by any key of verifier release (release)"],
    ["oldscan", 'spec.conditions[0]: condition "vulnerability scan is younger than 7 days" is false'],
  ] as [ScenarioImage, string][])(
    "%s is denied at pull, and at create with its reason",
    async (n, reason) => {
      const ref = img[n].ref;
      const pulled = await pullError(ref);
      expect(pulled).toContain(`tollgate: denied ${ref} (${img[n].digest})`);
      // Two policies are in use and a pull has no namespace: the pull error names neither
      // tenant's reason (the audit log has them); the create-time denial below does.
      expect(pulled).toContain("no policy in use on this node allows it");
      expect(await ctrd.cri.imageStatus(ref)).toBeUndefined();
      // Already on the node (pulled around the verifier): the create-time gate denies it too.
      pullAround(ref);
      const c = await create("team-a", ref);
      expect(c.error).toContain("PermissionDenied");
      expect(c.error).toContain(`in namespace "team-a" by policy "builder-a"`);
      expect(c.error).toContain(reason);
    },
  );

  it("tenancy: team-b's policy asks for another builder, so team-a's image is denied there", async () => {
    const ref = img.bundle.ref;
    expect((await create("team-a", ref)).error).toBeUndefined();
    const b = await create("team-b", ref);
    expect(b.error).toContain(`in namespace "team-b" by policy "builder-b"`);
    expect(b.error).toContain(`${P}condition "built by ${BUILDER_B}" is false`);
  });

  it("request.namespace: one verification, allowed in team-c and denied in team-d (cached in between); the pull is admitted because team-c could run it", async () => {
    const ref = imgC.bundle.ref;
    // Neither builder-a nor builder-b allows it; per-namespace does, for team-c only.
    expect(await pullError(ref)).toBeUndefined();
    const c = await create("team-c", ref);
    expect(c.error).toBeUndefined();
    await ctrd.cri.startContainer(c.id!);
    await ctrd.cri.waitForLog(c.id!, "hello from attest-ns/bundle:v1");
    const d = await create("team-d", ref);
    expect(d.error).toContain("PermissionDenied");
    expect(d.error).toContain(`in namespace "team-d" by policy "per-namespace"`);
    expect(d.error).toContain('spec.conditions[0]: condition "runs only in team-c" is false');
    expect((await create("team-c", ref)).error).toBeUndefined();
  });

  it("request.namespace at pull: denied once no namespace that could run the image uses the policy", async () => {
    // team-c moves to builder-a; only team-d (which the condition refuses) uses per-namespace.
    writeNamespaces("builder-a");
    await waitFor(
      "team-c switched to builder-a",
      async () => (await create("team-c", imgC.bundle.ref)).error?.includes('by policy "builder-a"') === true,
      30_000,
    );
    const ref = imgC.legacy.ref;
    const pulled = await pullError(ref);
    expect(pulled).toContain(`tollgate: denied ${ref} (${imgC.legacy.digest})`);
    expect(pulled).not.toContain("team-d");
    expect(await ctrd.cri.imageStatus(ref)).toBeUndefined();
    // Back on team-c, the same image pulls (its verification is cached: only the namespaces asked change).
    writeNamespaces("per-namespace");
    await waitFor(
      "team-c back on per-namespace",
      async () => (await create("team-c", imgC.bundle.ref)).error === undefined,
      30_000,
    );
    expect(await pullError(ref)).toBeUndefined();
  });
});
