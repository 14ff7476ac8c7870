// Keyless verification with the Sigstore trusted root through TUF, end to end on a real
// containerd 2.1.9: the built agent and pull verifier, a real registry with images carrying
// keyless bundles from a local mock Sigstore, and a local TUF repository on 127.0.0.1 that
// serves its trusted root. Pass, wrong identity, the repository rotating its root and adding
// a second CA (picked up by the running agent), and the mirror going away (last good root
// used, status says stale).
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import {
  keylessBundle,
  type MockSigstore,
  mergedTrustedRoot,
  startMockSigstore,
} from "../test/engine/cosign/mock-sigstore.js";
import { type PushedImage, pushBusyboxImage } from "../test/support/images.js";
import { attachBundle } from "../test/support/keyless-registry.js";
import { type Daemon, waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { repoRoot } from "../test/support/tools.js";
import { LocalTufRepo } from "../test/support/tuf-repo.js";
import { agentStatus, startAgentNode, startAgentProcess } from "./lib/agent-node.js";
import type { Containerd } from "./lib/containerd.js";
import { criErrorOf } from "./lib/cri.js";

const SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const OTHER = "https://github.com/mallory/app/.github/workflows/x.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";

let work: string;
let registry: LocalRegistry;
let ctrd: Containerd;
let agent: Daemon | undefined;
let apiSocket: string;
let repo: LocalTufRepo;
let a: MockSigstore;
let b: MockSigstore;
const img: Record<string, PushedImage> = {};

const pullError = async (ref: string) => (await criErrorOf(ctrd.cri.pullImage(ref)))?.details;

async function signed(name: string, s: MockSigstore, subject: string): Promise<PushedImage> {
  const i = pushBusyboxImage(registry.host, `keyless/${name}`, "v1", { marker: `tuf-${name}` });
  await attachBundle(registry, i, await keylessBundle(s, { digest: i.digest, subject, issuer: ISSUER }));
  return i;
}

const trust = async () => (await agentStatus(apiSocket)).sigstoreTrust?.[0];

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-tuf-"));
  execFileSync(process.execPath, [path.join(repoRoot, "scripts", "build.mjs")], {
    cwd: repoRoot,
    stdio: "pipe",
  });
  [registry, a, b] = await Promise.all([
    startRegistry(path.join(work, "registry")),
    startMockSigstore(),
    startMockSigstore(),
  ]);
  img.good = await signed("good", a, SUBJECT);
  img.later = await signed("later", a, SUBJECT);
  img.mallory = await signed("mallory", a, OTHER);
  img.newca = await signed("newca", b, SUBJECT);
  repo = new LocalTufRepo();
  repo.setTrustedRoot(a.trustedRoot);
  await repo.start();

  const policyDir = path.join(work, "policies");
  mkdirSync(policyDir);
  writeFileSync(
    path.join(policyDir, "keyless.yaml"),
    stringify(
      repo.keylessPolicy({
        name: "keyless",
        images: [`${registry.host}/**`],
        identities: [{ issuer: ISSUER, subject: SUBJECT }],
        refreshIntervalSeconds: 60,
      }),
    ),
  );
  const node = await startAgentNode({
    work,
    policyDir,
    nriTimeoutMs: 2000,
    perVerifierTimeout: "10s",
    defaultPolicy: "keyless",
    pullVerifierTimeoutMs: 8000,
    agentConfig: { sigstore: { tufCacheDir: path.join(work, "tuf"), tufFetchTimeoutMs: 2000 } },
  });
  ctrd = node.ctrd;
  apiSocket = node.apiSocket;
  agent = await startAgentProcess(node, work);
  await waitFor("trusted root fetched", async () => (await trust())?.state === "fresh", 60_000);
}, 300_000);

afterAll(async () => {
  await agent?.stop();
  await ctrd?.stop();
  await registry?.stop();
  await repo?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("keyless with the trusted root from a local TUF repository, on containerd", () => {
  it("the configured identity pulls; another identity and an untrusted CA are denied", async () => {
    expect(await trust()).toMatchObject({ mirror: repo.url, state: "fresh", origin: "tuf", rootVersion: 1 });
    expect(await pullError(img.good!.ref)).toBeUndefined();
    const denied = await pullError(img.mallory!.ref);
    expect(denied).toContain(`tollgate: denied ${img.mallory!.ref}`);
    expect(denied).toContain("mallory");
    expect(await pullError(img.newca!.ref)).toContain(`tollgate: denied ${img.newca!.ref}`);
  });

  it("root rotated in the repository, a CA added: the running agent picks it up", async () => {
    repo.rotateRoot();
    repo.setTrustedRoot(mergedTrustedRoot(a, b));
    await waitFor("rotated root picked up", async () => (await trust())?.rootVersion === 2, 120_000);
    expect(await trust()).toMatchObject({ state: "fresh" });
    // Signed under the added CA: allowed now, without a restart (the earlier denial was for the old root).
    expect(await pullError(img.newca!.ref)).toBeUndefined();
  }, 180_000);

  it("mirror unreachable: the last good root keeps verifying, and the status says stale", async () => {
    await repo.stop();
    await waitFor("refresh failure visible", async () => (await trust())?.state === "stale", 120_000);
    const st = await trust();
    expect(st!.lastError?.message).toContain(`TUF refresh from ${repo.url} failed`);
    expect(st!.rootVersion).toBe(2);
    expect(await pullError(img.later!.ref)).toBeUndefined();
  }, 180_000);
});
