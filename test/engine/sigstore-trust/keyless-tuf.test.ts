// Keyless cosign verification with the trusted root fetched through TUF, end to end in the
// engine: a local TUF repository (127.0.0.1) serves the trusted_root.json of a local mock
// Sigstore (Fulcio CA + CT log, Rekor, TSA); signatures are real keyless bundles. The policy
// names the mirror and its initial TUF root; the engine gets the root from TufTrustedRoots.
import crypto from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { verifyCosign } from "../../../src/engine/cosign/index.js";
import { compilePolicy } from "../../../src/engine/policy/index.js";
import { TufTrustedRoots } from "../../../src/engine/sigstore-trust/provider.js";
import { tufSourcesOf } from "../../../src/engine/sigstore-trust/resolve.js";
import type { Subject } from "../../../src/engine/types.js";
import { createEngineCore } from "../../../src/engine/verify.js";
import { LocalTufRepo } from "../../support/tuf-repo.js";
import { MemorySource } from "../cosign/memory-source.js";
import {
  keylessBundle,
  type MockSigstore,
  mergedTrustedRoot,
  startMockSigstore,
} from "../cosign/mock-sigstore.js";

const SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";

let a: MockSigstore;
let b: MockSigstore;
beforeAll(async () => {
  [a, b] = await Promise.all([startMockSigstore(), startMockSigstore()]);
}, 60_000);

let dir: string;
let repo: LocalTufRepo;
beforeEach(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-tuf-keyless-"));
  repo = new LocalTufRepo();
  repo.setTrustedRoot(a.trustedRoot);
  await repo.start();
});
afterEach(async () => {
  await repo.stop();
  rmSync(dir, { recursive: true, force: true });
});
async function policyFor(identities = [{ issuer: ISSUER, subject: SUBJECT }]) {
  return compilePolicy(
    repo.keylessPolicy({
      name: "keyless-tuf",
      images: ["registry.local/**"],
      identities,
      refreshIntervalSeconds: 60,
    }),
  );
}

let n = 0;
async function signed(s: MockSigstore, o: { subject?: string } = {}) {
  const digest = `sha256:${crypto.createHash("sha256").update(`image ${n++}`).digest("hex")}`;
  const src = new MemorySource(`registry.local/acme/app@${digest}`, digest);
  src.addBundle(await keylessBundle(s, { digest, subject: o.subject ?? SUBJECT, issuer: ISSUER }));
  return { subject: { reference: src.subject.reference, digest } satisfies Subject, src };
}

function engineWith(roots: TufTrustedRoots, sources: Map<string, MemorySource>) {
  return createEngineCore(
    {
      discover: async (s) => sources.get(s.digest)!,
      notation: async () => [],
      cosign: (src, cfg, o) => verifyCosign(src, cfg, o),
    },
    { trustedRoots: roots },
  );
}

describe("keyless verification with the trusted root from a local TUF repository", () => {
  it("passes for the configured identity and denies another identity", async () => {
    const roots = new TufTrustedRoots({ cacheDir: dir });
    const good = await signed(a);
    const mallory = await signed(a, {
      subject: "https://github.com/mallory/x/.github/workflows/x.yml@refs/heads/main",
    });
    const engine = engineWith(
      roots,
      new Map([
        [good.subject.digest, good.src],
        [mallory.subject.digest, mallory.src],
      ]),
    );
    const p = await policyFor();
    const v = await engine.verify(good.subject, p);
    expect(v).toMatchObject({ allowed: true, outcome: "verified" });
    expect(v.verifiers[0]).toMatchObject({ result: "passed", signer: SUBJECT, issuer: ISSUER });
    const d = await engine.verify(mallory.subject, p);
    expect(d).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(d.verifiers[0]).toMatchObject({ result: "failed", check: "trustedIdentity" });
    expect(d.reasons.join(" ")).toContain("mallory");
  });

  it("denies a signature from a Sigstore the TUF-distributed root does not trust", async () => {
    const roots = new TufTrustedRoots({ cacheDir: dir });
    const other = await signed(b);
    const engine = engineWith(roots, new Map([[other.subject.digest, other.src]]));
    const v = await engine.verify(other.subject, await policyFor());
    expect(v).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(v.verifiers[0]?.check).toMatch(/certificate|tlog|sct/);
  });

  it("root rotated in the repository: new root picked up without a restart; old signatures still verify", async () => {
    const roots = new TufTrustedRoots({ cacheDir: dir });
    const old = await signed(a);
    const fresh = await signed(b);
    const engine = engineWith(
      roots,
      new Map([
        [old.subject.digest, old.src],
        [fresh.subject.digest, fresh.src],
      ]),
    );
    const p = await policyFor();
    expect((await engine.verify(old.subject, p)).outcome).toBe("verified");
    const before = await engine.verify(fresh.subject, p);
    expect(before.outcome).toBe("rejected");

    // The repository rotates its TUF root keys and publishes a trusted root adding b.
    repo.rotateRoot();
    repo.setTrustedRoot(mergedTrustedRoot(a, b));
    await roots.refresh(tufSourcesOf(p)[0]!);
    expect(roots.status()[0]).toMatchObject({ state: "fresh", rootVersion: 2 });

    // The cached denial was for the old root: the new root re-decides (same engine, same policy).
    const after = await engine.verify(fresh.subject, p);
    expect(after).toMatchObject({ outcome: "verified", cached: false });
    expect((await engine.verify(old.subject, p)).outcome).toBe("verified");
  });

  it("mirror unreachable: verifies with the last good root and the status says stale", async () => {
    const roots = new TufTrustedRoots({ cacheDir: dir, limits: { fetchTimeoutMs: 2000 } });
    const x = await signed(a);
    const y = await signed(a);
    const engine = engineWith(
      roots,
      new Map([
        [x.subject.digest, x.src],
        [y.subject.digest, y.src],
      ]),
    );
    const p = await policyFor();
    expect((await engine.verify(x.subject, p)).outcome).toBe("verified");
    await repo.stop();
    await roots.refreshDue(); // not due yet: nothing happens
    await roots.refresh(tufSourcesOf(p)[0]!);
    expect((await engine.verify(y.subject, p)).outcome).toBe("verified");
    const [st] = roots.status();
    expect(st).toMatchObject({ state: "stale", consecutiveFailures: 1 });
    expect(st!.lastError?.message).toContain("failed");
  });

  it("no root ever obtained: the verification could not complete and the failure policy answers", async () => {
    await repo.stop();
    const roots = new TufTrustedRoots({ cacheDir: dir, limits: { fetchTimeoutMs: 2000 } });
    const x = await signed(a);
    const engine = engineWith(roots, new Map([[x.subject.digest, x.src]]));
    const v = await engine.verify(x.subject, await policyFor());
    expect(v).toMatchObject({
      allowed: false,
      outcome: "failed",
      failure: { code: "TRUST_ROOT_UNAVAILABLE" },
    });
    expect(v.reasons[0]).toContain(`no verified Sigstore trusted root from ${repo.url}`);
  });

  it("an engine without a TUF client says so (failure policy), never verifies with nothing", async () => {
    const x = await signed(a);
    const engine = createEngineCore({
      discover: async () => x.src,
      notation: async () => [],
      cosign: (src, cfg, o) => verifyCosign(src, cfg, o),
    });
    const v = await engine.verify(x.subject, await policyFor());
    expect(v).toMatchObject({
      allowed: false,
      outcome: "failed",
      failure: { code: "TRUST_ROOT_UNAVAILABLE" },
    });
    expect(v.reasons[0]).toContain("no TUF client");
  });
});
