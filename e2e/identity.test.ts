// What the gate judges is what containerd starts, for every reference form CRI accepts, on
// a real containerd 2.1.9 through CRI as kubelet sends it (ImageStatus → PullImage if
// absent → CreateContainer with image = image ID and user_specified_image = what the pod
// spec says). docker.io and registry-1.docker.io are served by the loopback registry through
// one certs.d tree that containerd and the agent both read (there is no outside network).
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ExemptImages } from "../src/decision/exempt.js";
import { canonicalReference, storedName } from "../src/engine/identity.js";
import { compilePatterns } from "../src/engine/policy/patterns.js";
import { type PushedImage, pushBusyboxImage } from "../test/support/images.js";
import type { Daemon } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../test/support/signing.js";
import { repoRoot } from "../test/support/tools.js";
import { cosignPolicyDoc, startAgentNode, startAgentProcess } from "./lib/agent-node.js";
import type { Containerd } from "./lib/containerd.js";
import { CriError, type Pod } from "./lib/cri.js";

let work: string;
let registry: LocalRegistry;
let ctrd: Containerd;
let agent: Daemon | undefined;
let key: CosignKeys;
let H: string; // 127.0.0.1:<port>
let port: string;
const img: Record<string, PushedImage> = {};
const ids: Record<string, string> = {};
let seq = 0;

function writeYaml(dir: string, file: string, docs: unknown[]) {
  writeFileSync(path.join(dir, file), docs.map((d) => stringify(d)).join("---\n"));
}

const pods = new Map<string, Pod>();
async function podIn(namespace: string): Promise<Pod> {
  let p = pods.get(namespace);
  if (!p) {
    p = await ctrd.cri.runPodSandbox({ name: `id-${namespace}`, namespace, uid: `uid-${namespace}` });
    pods.set(namespace, p);
  }
  return p;
}

/** CreateContainer like kubelet; the id, or the CRI error text. */
async function create(
  namespace: string,
  image: string,
  imageRef?: string,
): Promise<{ id?: string; error?: string }> {
  const pod = await podIn(namespace);
  try {
    return { id: await ctrd.cri.createContainer(pod, { name: `c${++seq}`, image, imageRef }) };
  } catch (e) {
    if (e instanceof CriError) return { error: e.details };
    throw e;
  }
}

function decisionsFor(namespace: string, image: string): Array<Record<string, unknown>> {
  return readFileSync(agent!.logFile, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter(
      (r) => r.audit === true && r.event === "create" && r.namespace === namespace && r.image === image,
    );
}

/**
 * Points `host` at the loopback registry as its only endpoint (no fallback to the real
 * upstream, which does not exist here: a failed fallback would read as "registry down").
 */
function serveFromLoopback(certs: string, host: string) {
  mkdirSync(path.join(certs, host), { recursive: true });
  writeFileSync(path.join(certs, host, "hosts.toml"), `server = ${JSON.stringify(`http://${H}`)}\n`);
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-identity-"));
  execFileSync(process.execPath, [path.join(repoRoot, "scripts", "build.mjs")], {
    cwd: repoRoot,
    stdio: "pipe",
  });
  registry = await startRegistry(path.join(work, "registry"));
  H = registry.host;
  port = H.split(":")[1]!;
  key = await cosignGenerateKeyPair(path.join(work, "key"));
  // Repositories as Docker Hub would hold them: "e2e/…" (docker.io/e2e/…) and "library/…".
  for (const [n, repo] of [
    ["signed", "e2e/signed"],
    ["unsigned", "e2e/unsigned"],
    ["official", "library/official"],
    ["plain", "library/plain"],
  ] as const) {
    img[n] = pushBusyboxImage(H, repo, "v1", { marker: `identity-${n}` });
  }
  for (const n of ["signed", "official"]) await cosignSign({ ref: img[n]!.pinned, keyDir: key });

  const certs = path.join(work, "certs.d");
  serveFromLoopback(certs, "docker.io");
  serveFromLoopback(certs, "registry-1.docker.io");

  const policyDir = path.join(work, "policies");
  mkdirSync(policyDir);
  writeYaml(policyDir, "policies.yaml", [
    // Under any-policy-in-use this lets every pull in, so what is under test here is the
    // create-time gate.
    cosignPolicyDoc("pulls", key.publicKeyPem, { images: ["pulls.invalid/**"], unmatchedImages: "Allow" }),
    cosignPolicyDoc("closed", key.publicKeyPem, { failurePolicy: "Closed" }),
    cosignPolicyDoc("open", key.publicKeyPem, { failurePolicy: "Open" }),
    // Governs one registry name only; everything else is denied.
    cosignPolicyDoc("team-registry", key.publicKeyPem, {
      failurePolicy: "Open",
      images: [`${H}/e2e/**`],
      unmatchedImages: "Deny",
    }),
    // Governs Docker Hub's e2e/ namespace, however the host is spelled; the rest is allowed.
    cosignPolicyDoc("hub-governed", key.publicKeyPem, {
      failurePolicy: "Open",
      images: ["docker.io/e2e/**"],
      unmatchedImages: "Allow",
    }),
  ]);
  const ns = (name: string, policy: string) => ({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name, annotations: { "tollgate.dev/policy": policy } },
  });
  writeYaml(policyDir, "namespaces.yaml", [
    ns("ns-closed", "closed"),
    ns("ns-open", "open"),
    ns("ns-team", "team-registry"),
    ns("ns-hub", "hub-governed"),
    // Names "pulls", which puts it in use (see above); no pod runs here.
    ns("ns-pulls", "pulls"),
  ]);

  const node = await startAgentNode({
    work,
    policyDir,
    nriTimeoutMs: 2000,
    perVerifierTimeout: "10s",
    defaultPolicy: "closed",
    // The agent's own exemption: one name of the unsigned image (another host name of the
    // same registry), never its digest under other names.
    exemptImages: [`localhost:${port}/e2e/unsigned:v1`],
    pullVerifierTimeoutMs: 8000,
    registryCertsDir: certs,
  });
  ctrd = node.ctrd;
  agent = await startAgentProcess(node, work);
  // Content onto the node through CRI (hub-governed allows every pull it does not govern,
  // and under any-policy-in-use that lets the unsigned images in: the gate is under test).
  for (const n of ["signed", "unsigned"]) ids[n] = await ctrd.cri.pullImage(`${H}/e2e/${n}:v1`);
  for (const n of ["official", "plain"]) ids[n] = await ctrd.cri.pullImage(`${H}/library/${n}:v1`);
}, 300_000);

afterAll(async () => {
  await agent?.stop();
  await ctrd?.stop();
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

// [form, signed spelling, unsigned spelling]; functions: image IDs are known after the pulls.
const FORMS: Array<[string, () => string, () => string]> = [
  ["name:tag", () => `${H}/e2e/signed:v1`, () => `${H}/e2e/unsigned:v1`],
  ["name@digest", () => img.signed!.pinned, () => img.unsigned!.pinned],
  [
    "name:tag@digest",
    () => `${H}/e2e/signed:v1@${img.signed!.digest}`,
    () => `${H}/e2e/unsigned:v1@${img.unsigned!.digest}`,
  ],
  ["short name (docker.io/e2e/…)", () => "e2e/signed:v1", () => "e2e/unsigned:v1"],
  ["official short name (docker.io/library/…)", () => "official:v1", () => "plain:v1"],
  ["index.docker.io", () => "index.docker.io/e2e/signed:v1", () => "index.docker.io/e2e/unsigned:v1"],
  [
    "registry-1.docker.io",
    () => "registry-1.docker.io/library/official:v1",
    () => "registry-1.docker.io/library/plain:v1",
  ],
  [
    "docker.io with tag@digest",
    () => `docker.io/library/official:v1@${img.official!.digest}`,
    () => `docker.io/library/plain:v9@${img.plain!.digest}`,
  ],
  [
    "another host name of the registry",
    () => `localhost:${port}/e2e/signed:v1`,
    () => `localhost:${port}/library/plain:v1`,
  ],
  ["full image ID", () => ids.signed!, () => ids.unsigned!],
  ["short image ID", () => ids.signed!.slice(7, 19), () => ids.unsigned!.slice(7, 19)],
  ["short image ID with algorithm", () => ids.official!.slice(0, 20), () => ids.plain!.slice(0, 20)],
];

describe("every reference form, under Closed and Open", () => {
  it.each(FORMS)("%s: signed runs, unsigned is denied", async (_form, good, bad) => {
    for (const ns of ["ns-closed", "ns-open"]) {
      const ok = await create(ns, good());
      expect(ok.error, `${ns} ${good()}`).toBeUndefined();
      await ctrd.cri.startContainer(ok.id!);
      await ctrd.cri.waitForLog(ok.id!, "hello from");
      const no = await create(ns, bad());
      expect(no.error, `${ns} ${bad()}`).toContain("code = PermissionDenied");
      expect(no.error).toContain(`in namespace "${ns}" by policy "${ns.slice(3)}"`);
    }
  });

  it("an image ID that is also carried by an ungoverned name is judged under every name", async () => {
    // ids.signed is stored as 127.0.0.1:<port>/e2e/signed (governed by team-registry) and as
    // docker.io/e2e/signed etc. (not governed, unmatchedImages Deny): containerd may start
    // any of them, so the ID is denied while the governed name runs.
    expect((await create("ns-team", `${H}/e2e/signed:v1`)).error).toBeUndefined();
    const viaId = await create("ns-team", ids.signed!);
    expect(viaId.error).toContain("code = PermissionDenied");
    expect(viaId.error).toContain("not matched by spec.images");
  });

  it("content the gate cannot identify is denied under Open (kubelet's image id, another name)", async () => {
    // kubelet resolved an image id, then the pod's image names nothing containerd holds
    // (an unknown image ID, an unknown short ID, a name removed since): never the failure policy.
    for (const image of [`sha256:${"f".repeat(64)}`, "fffffffffff0", `${H}/e2e/gone:v1`]) {
      const r = await create("ns-open", image, ids.signed!);
      expect(r.error, image).toContain("code = PermissionDenied");
      expect(r.error).toContain("cannot tell which image content containerd would start");
    }
  });
});

describe("name-dependent decisions are made per request, after a cached verdict", () => {
  it("a policy governing one registry name denies the same digest under another name", async () => {
    const governed = `${H}/e2e/signed:v1`;
    const other = `localhost:${port}/e2e/signed:v1`;
    expect((await create("ns-team", governed)).error).toBeUndefined();
    expect(decisionsFor("ns-team", governed).at(-1)).toMatchObject({ result: "allow", kind: "verified" });
    // Same registry, same digest, another name: the cached pass does not answer for it.
    const r = await create("ns-team", other);
    expect(r.error).toContain("code = PermissionDenied");
    expect(r.error).toContain("not matched by spec.images and unmatchedImages is Deny");
    // And the governed name is still served from the cache.
    expect((await create("ns-team", governed)).error).toBeUndefined();
    expect(decisionsFor("ns-team", governed).at(-1)).toMatchObject({ source: "cache" });
  });

  it("a re-spelled Docker Hub host is governed like docker.io (no escape under unmatchedImages Allow)", async () => {
    for (const image of ["e2e/unsigned:v1", "index.docker.io/e2e/unsigned:v1", "docker.io/e2e/unsigned:v1"]) {
      const r = await create("ns-hub", image);
      expect(r.error, `${image}: ${JSON.stringify(decisionsFor("ns-hub", storedName(image)))}`).toContain(
        "code = PermissionDenied",
      );
    }
    // registry-1.docker.io is a name containerd stores separately, for the same registry.
    const r = await create("ns-hub", "registry-1.docker.io/e2e/unsigned:v1");
    expect(r.error).toContain("code = PermissionDenied");
    // Not governed at all: allowed by unmatchedImages Allow.
    expect((await create("ns-hub", `${H}/e2e/unsigned:v1`)).error).toBeUndefined();
  });

  it("the agent's exemption of one name does not exempt the digest under another", async () => {
    const exempt = `localhost:${port}/e2e/unsigned:v1`;
    const r1 = await create("ns-closed", exempt);
    expect(r1.error).toBeUndefined();
    expect(decisionsFor("ns-closed", exempt).at(-1)).toMatchObject({ result: "allow", kind: "exempt" });
    const r2 = await create("ns-closed", `${H}/e2e/unsigned:v1`);
    expect(r2.error).toContain("code = PermissionDenied");
  });
});

describe("property: our identity agrees with the name containerd stores", () => {
  it("pull a generated spelling through CRI; the stored name is ours, governance and exemptions agree", async () => {
    const repos = fc.constantFrom(
      { hosts: [H, `localhost:${port}`], path: "e2e/signed" },
      { hosts: ["", "docker.io/", "index.docker.io/", "registry-1.docker.io/"], path: "library/official" },
      { hosts: ["", "docker.io/", "index.docker.io/"], path: "e2e/signed" },
    );
    const governs = compilePatterns(["docker.io/e2e/**", `${H}/e2e/**`]);
    const exempt = new ExemptImages([`index.docker.io/library/official:v1`, `localhost:${port}/e2e/**`]);
    await fc.assert(
      fc.asyncProperty(
        repos.chain((r) =>
          fc.record({
            host: fc.constantFrom(...r.hosts),
            path: fc.constant(r.path),
            short: fc.boolean(),
            suffix: fc.constantFrom("tag", "digest", "both"),
          }),
        ),
        async ({ host, path: repoPath, short, suffix }) => {
          const p =
            short && repoPath.startsWith("library/") && host !== "registry-1.docker.io/"
              ? repoPath.slice(8)
              : repoPath;
          const h = host === "" || host.endsWith("/") ? host : `${host}/`;
          const digest = repoPath === "e2e/signed" ? img.signed!.digest : img.official!.digest;
          const spelling = `${h}${p}${suffix === "tag" ? ":v1" : suffix === "digest" ? `@${digest}` : `:v1@${digest}`}`;
          const id = await ctrd.cri.pullImage(spelling);
          const st = await ctrd.cri.imageStatus(id);
          const stored = [...(st?.repoTags ?? []), ...(st?.repoDigests ?? [])];
          // The oracle: containerd stored the name exactly as our identity spells it …
          expect(stored, spelling).toContain(storedName(spelling));
          // … so every decision made on our canonical identity is the one made for what
          // containerd stores and starts.
          const theirs = stored.find((n) => n === storedName(spelling))!;
          expect(canonicalReference(theirs)).toBe(canonicalReference(spelling));
          expect(governs(theirs)).toBe(governs(spelling));
          expect(exempt.match(theirs, digest)).toBe(exempt.match(spelling, digest));
        },
      ),
      { numRuns: 12 },
    );
  });
});
