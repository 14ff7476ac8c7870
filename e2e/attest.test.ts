// Attestation policies end to end on a real containerd 2.1.9 + runc: the pull verifier in
// bin_dir and the agent's NRI gate, a real registry, images signed and attested with the real
// `cosign attest` 3.1.1 (key-based; bundle referrers and the legacy .att tag), the file
// policy source. Two namespaces ask for different builders.
// (A cached allow expiring with the scan age is shown with an injected clock in
// test/engine/attest.integration.test.ts.)
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { crane, type PushedImage, pushBusyboxImage } from "../test/support/images.js";
import { type Daemon, startDaemon, waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { type CosignKeys, cosignAttest, cosignGenerateKeyPair, cosignSign } from "../test/support/signing.js";
import { repoRoot } from "../test/support/tools.js";
import { startAgentNode } from "./lib/agent-node.js";
import type { Containerd } from "./lib/containerd.js";
import { CriError, type Pod } from "./lib/cri.js";

const BUILDER_A = "https://ci.team-a.example/builder";
const BUILDER_B = "https://ci.team-b.example/builder";
const DAY = 86_400_000;

let work: string;
let registry: LocalRegistry;
let ctrd: Containerd;
let agent: Daemon | undefined;
let key: CosignKeys;
let rogue: CosignKeys;
let apiSocket: string;
const img: Record<string, PushedImage> = {};
let seq = 0;

function provenance(builder: string) {
  return {
    buildDefinition: {
      buildType: "https://example.com/build@v1",
      externalParameters: { source: "git+https://git.example/app@refs/heads/main" },
    },
    runDetails: { builder: { id: builder } },
  };
}

function vuln(ageDays: number) {
  const t = new Date(Date.now() - ageDays * DAY).toISOString();
  return {
    invocation: { uri: "https://ci.example/scan" },
    scanner: { uri: "pkg:github/aquasecurity/trivy@0.50.0", version: "0.50.0", result: { critical: 0 } },
    metadata: { scanStartedOn: t, scanFinishedOn: t },
  };
}

function policy(name: string, builder: string) {
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name },
    spec: {
      verifiers: [{ name: "release", cosign: { keys: [{ name: "release", pem: key.publicKeyPem }] } }],
      attestations: [
        {
          name: "provenance",
          predicateType: "slsaprovenance1",
          verifier: "release",
          conditions: [
            { expression: `predicate.runDetails.builder.id == "${builder}"`, message: `built by ${builder}` },
            {
              expression: `predicate.buildDefinition.externalParameters.source.startsWith("git+https://git.example/")`,
              message: "built from git.example",
            },
          ],
        },
        { name: "scan", predicateType: "vuln", verifier: "release" },
      ],
      conditions: [
        {
          expression: `now - timestamp(attestations.scan.predicate.metadata.scanFinishedOn) < duration("168h")`,
          message: "vulnerability scan is younger than 7 days",
        },
      ],
    },
  };
}

function writeYaml(dir: string, file: string, docs: unknown[]) {
  const tmp = path.join(dir, `.${file}.tmp`);
  writeFileSync(tmp, docs.map((d) => stringify(d)).join("---\n"));
  execFileSync("mv", [tmp, path.join(dir, file)]);
}

function status(): Promise<{ nri: { state: string }; policies: { name: string }[] }> {
  return new Promise((resolve, reject) => {
    const r = http.request({ socketPath: apiSocket, path: "/v1/status", agent: false }, (res) => {
      let b = "";
      res.on("data", (c) => (b += c));
      res.on("end", () => resolve(JSON.parse(b)));
    });
    r.on("error", reject);
    r.end();
  });
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
  rogue = await cosignGenerateKeyPair(path.join(work, "rogue"));
  const names = ["good", "legacy", "otherbuilder", "missing", "transplant", "untrusted", "oldscan"];
  for (const n of names) img[n] = pushBusyboxImage(registry.host, `attest/${n}`, "v1", { marker: n });
  const at = (n: string) => img[n]!.pinned;
  for (const n of names) await cosignSign({ ref: at(n), keyDir: key });
  const attest = (
    n: string,
    type: string,
    predicate: unknown,
    o: { legacy?: boolean; by?: CosignKeys } = {},
  ) =>
    cosignAttest({
      ref: at(n),
      keyDir: o.by ?? key,
      type,
      predicate,
      ...(o.legacy ? { format: "legacy" as const } : {}),
    });
  await attest("good", "slsaprovenance1", provenance(BUILDER_A));
  await attest("good", "vuln", vuln(1));
  await attest("legacy", "slsaprovenance1", provenance(BUILDER_A), { legacy: true });
  await attest("legacy", "vuln", vuln(1), { legacy: true });
  await attest("otherbuilder", "slsaprovenance1", provenance("https://evil.example/builder"));
  await attest("otherbuilder", "vuln", vuln(1));
  await attest("missing", "vuln", vuln(1));
  // The legacy image's .att (statements naming its digest) copied under this image's .att tag.
  const att = (p: PushedImage) => `${p.repo}:${p.digest.replace(":", "-")}.att`;
  crane(["copy", "--insecure", att(img.legacy!), att(img.transplant!)]);
  await attest("transplant", "vuln", vuln(1));
  await attest("untrusted", "slsaprovenance1", provenance(BUILDER_A), { by: rogue });
  await attest("untrusted", "vuln", vuln(1));
  await attest("oldscan", "slsaprovenance1", provenance(BUILDER_A));
  await attest("oldscan", "vuln", vuln(30));

  const policyDir = path.join(work, "policies");
  mkdirSync(policyDir);
  writeYaml(policyDir, "policies.yaml", [policy("builder-a", BUILDER_A), policy("builder-b", BUILDER_B)]);
  writeYaml(policyDir, "namespaces.yaml", [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: "team-a", annotations: { "tollgate.dev/policy": "builder-a" } },
    },
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: "team-b", annotations: { "tollgate.dev/policy": "builder-b" } },
    },
  ]);
  const node = await startAgentNode({
    work,
    policyDir,
    nriTimeoutMs: 2000,
    perVerifierTimeout: "10s",
    defaultPolicy: "builder-a",
    pullVerifierTimeoutMs: 8000,
  });
  ctrd = node.ctrd;
  apiSocket = node.apiSocket;
  agent = startDaemon(
    "agent",
    process.execPath,
    [path.join(repoRoot, "dist", "tollgate.mjs"), "agent", "--config", node.configPath],
    { logDir: work },
  );
  await waitFor(
    "agent registered",
    async () => existsSync(apiSocket) && (await status()).nri.state === "registered",
    60_000,
  );
  await waitFor("policies loaded", async () => (await status()).policies.length === 2, 30_000);
}, 300_000);

afterAll(async () => {
  await agent?.stop();
  await ctrd?.stop();
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("attestation policies on containerd", () => {
  it.each(["good", "legacy"])(
    "provenance from the allowed builder and source (%s format) pulls and runs",
    async (n) => {
      expect(await pullError(img[n]!.ref)).toBeUndefined();
      const c = await create("team-a", img[n]!.ref);
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
  ])("%s is denied at pull and at create with its reason", async (n, reason) => {
    const ref = img[n]!.ref;
    const pulled = await pullError(ref);
    expect(pulled).toContain(`tollgate: denied ${ref} (${img[n]!.digest})`);
    expect(pulled).toContain(reason);
    expect(await ctrd.cri.imageStatus(ref)).toBeUndefined();
    // Already on the node (pulled around the verifier): the create-time gate denies it too.
    pullAround(ref);
    const c = await create("team-a", ref);
    expect(c.error).toContain("PermissionDenied");
    expect(c.error).toContain(`in namespace "team-a" by policy "builder-a"`);
    expect(c.error).toContain(reason);
  });

  it("tenancy: team-b's policy asks for another builder, so team-a's image is denied there", async () => {
    const ref = img.good!.ref;
    expect((await create("team-a", ref)).error).toBeUndefined();
    const b = await create("team-b", ref);
    expect(b.error).toContain(`in namespace "team-b" by policy "builder-b"`);
    expect(b.error).toContain(`${P}condition "built by ${BUILDER_B}" is false`);
  });
});
