// The trusted root through TUF with the agent's own engine (createAgentEngine: real registry
// client, discovery, cosign verifier) against a real registry: an image with a keyless
// Sigstore bundle attached as cosign 3 does on a registry without the referrers API (bundle
// manifest with `subject`, listed in the `sha256-<hex>` referrers tag index). The TUF mirror
// is a local repository on 127.0.0.1 serving the mock Sigstore's trusted root.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateConfig } from "../../../src/config/agent.js";
import { createAgentEngine } from "../../../src/decision/wiring.js";
import { type CompiledPolicy, compilePolicy } from "../../../src/engine/policy/index.js";
import { tufSourcesOf } from "../../../src/engine/sigstore-trust/resolve.js";
import { type PushedImage, pushBusyboxImage } from "../../support/images.js";
import { attachBundle } from "../../support/keyless-registry.js";
import { type LocalRegistry, startRegistry } from "../../support/registry.js";
import { LocalTufRepo } from "../../support/tuf-repo.js";
import { keylessBundle, type MockSigstore, startMockSigstore } from "../cosign/mock-sigstore.js";

const SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";

let work: string;
let registry: LocalRegistry;
let sigstore: MockSigstore;
let repo: LocalTufRepo;
let image: PushedImage;

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-tuf-registry-"));
  [registry, sigstore] = await Promise.all([startRegistry(path.join(work, "registry")), startMockSigstore()]);
  image = pushBusyboxImage(registry.host, "keyless/app", "v1", { marker: "tuf-keyless" });
  await attachBundle(
    registry,
    image,
    await keylessBundle(sigstore, { digest: image.digest, subject: SUBJECT, issuer: ISSUER }),
  );
  repo = new LocalTufRepo();
  repo.setTrustedRoot(sigstore.trustedRoot);
  await repo.start();
}, 180_000);

afterAll(async () => {
  await repo?.stop();
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

function agentConfig() {
  const certs = path.join(work, "certs.d");
  mkdirSync(certs, { recursive: true });
  return validateConfig({
    registry: { certsDir: certs },
    sigstore: { tufCacheDir: path.join(work, "tuf"), tufFetchTimeoutMs: 2000 },
  });
}

async function policy(subject = SUBJECT): Promise<CompiledPolicy> {
  return compilePolicy(
    repo.keylessPolicy({
      name: "keyless",
      images: [`${registry.host}/**`],
      identities: [{ issuer: ISSUER, subject }],
    }),
  );
}

describe("keyless through TUF with the agent's engine and a real registry", () => {
  it("agent: verifies; another identity is denied; then the fallback verifies from the cache alone", async () => {
    const agent = createAgentEngine(agentConfig());
    const subject = { reference: image.pinned, digest: image.digest };
    const p = await policy();
    const v = await agent.verify(subject, p);
    expect(v, v.reasons.join("; ")).toMatchObject({ allowed: true, outcome: "verified" });
    expect(v.verifiers[0]).toMatchObject({ result: "passed", signer: SUBJECT });
    const d = await agent.verify(
      subject,
      await policy("https://github.com/acme/other/.github/workflows/x.yml@refs/heads/main"),
    );
    expect(d).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(d.verifiers[0]).toMatchObject({ check: "trustedIdentity" });
    expect(agent.trustedRoots!.status()[0]).toMatchObject({ state: "fresh", origin: "tuf" });

    // The agent is away and so is the mirror: the pull verifier's in-process engine decides
    // from the agent's TUF cache, without a single request to the mirror.
    await repo.stop();
    repo.requests.length = 0;
    const fallback = createAgentEngine(agentConfig(), undefined, { offline: true });
    const f = await fallback.verify(subject, p);
    expect(f, f.reasons.join("; ")).toMatchObject({ allowed: true, outcome: "verified" });
    expect(repo.requests).toEqual([]);
    expect(fallback.trustedRoots!.status()[0]).toMatchObject({ origin: "cache" });
    expect(tufSourcesOf(p)[0]!.mirror).toBe(repo.url);
  });
});
