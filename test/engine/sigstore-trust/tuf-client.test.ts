// The trusted root through TUF against a local TUF repository made in the test (tuf-js's
// models, ed25519/ECDSA keys) and served on 127.0.0.1: first fetch, root rotation, mirror
// unreachable (last good kept, stale), restart from the disk cache, expired and tampered
// metadata refused with a clear error, bounds on hung mirrors and oversized targets.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EngineError } from "../../../src/engine/errors.js";
import { TufTrustedRoots } from "../../../src/engine/sigstore-trust/provider.js";
import { tufSource } from "../../../src/engine/sigstore-trust/source.js";
import type { TufSource } from "../../../src/engine/sigstore-trust/types.js";
import { LocalTufRepo } from "../../support/tuf-repo.js";
import { selfSignedCert } from "../policy/material.js";

const root = (name: string) => ({
  mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
  certificateAuthorities: [
    {
      subject: { organization: name, commonName: name },
      uri: `https://${name}.local`,
      certChain: { certificates: [{ rawBytes: CERT }] },
      validFor: { start: "2020-01-01T00:00:00Z" },
    },
  ],
  tlogs: [],
  ctlogs: [],
  timestampAuthorities: [],
});
// A real self-signed certificate (DER, base64) as the CA of these test roots.
const CERT = selfSignedCert("tuf-test")
  .replace(/-----[A-Z ]+-----/g, "")
  .replace(/\s+/g, "");

let dir: string;
let repo: LocalTufRepo;
let src: TufSource;

beforeEach(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-tuf-"));
  repo = new LocalTufRepo();
  repo.setTrustedRoot(root("first"));
  await repo.start();
  src = tufSource(repo.url, repo.initialRoot, 3600);
});

afterEach(async () => {
  await repo.stop();
  rmSync(dir, { recursive: true, force: true });
});

const orgOf = (json: unknown) =>
  (json as { certificateAuthorities: Array<{ subject: { organization: string } }> })
    .certificateAuthorities[0]!.subject.organization;

async function unavailable(p: Promise<unknown>): Promise<EngineError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(EngineError);
  expect((e as EngineError).code).toBe("TRUST_ROOT_UNAVAILABLE");
  return e as EngineError;
}

describe("trusted root through TUF (local repository on 127.0.0.1)", () => {
  it("fetches and verifies trusted_root.json, caches it root-only, reports it fresh", async () => {
    const roots = new TufTrustedRoots({ cacheDir: dir });
    const got = await roots.get(src);
    expect(orgOf(got.json)).toBe("first");
    expect(got).toMatchObject({ origin: "tuf", rootVersion: 1 });
    expect(Date.parse(got.expires)).toBeGreaterThan(Date.now());
    const [st] = roots.status();
    expect(st).toMatchObject({ state: "fresh", mirror: repo.url, origin: "tuf", consecutiveFailures: 0 });
    expect(st!.nextRefreshAt).toBeDefined();
    // The whole TUF client workflow ran: timestamp, snapshot and targets by version, then the target by hash.
    expect(repo.requests).toEqual(
      expect.arrayContaining(["2.root.json", "timestamp.json", "1.snapshot.json", "1.targets.json"]),
    );
    expect(repo.requests.some((r) => /^targets\/[0-9a-f]{64}\.trusted_root\.json$/.test(r))).toBe(true);
    expect(statSync(path.join(dir, src.id)).mode & 0o777).toBe(0o700);
    // Held in memory: a second get does not touch the mirror.
    const n = repo.requests.length;
    await roots.get(src);
    expect(repo.requests.length).toBe(n);
  });

  it("follows a root rotation (new root signed by old and new keys) and picks up the new trusted root", async () => {
    const roots = new TufTrustedRoots({ cacheDir: dir });
    const first = await roots.get(src);
    repo.rotateRoot();
    repo.setTrustedRoot(root("second"));
    const after = await roots.refresh(src);
    expect(orgOf(after!.json)).toBe("second");
    expect(after!.rootVersion).toBe(2);
    expect(after!.digest).not.toBe(first.digest);
    expect(roots.peek(src)?.digest).toBe(after!.digest);
    expect(roots.status()[0]).toMatchObject({ state: "fresh", rootVersion: 2 });
  });

  it("refuses a new root not signed by the trusted root keys, and keeps the last good root", async () => {
    const roots = new TufTrustedRoots({ cacheDir: dir });
    const first = await roots.get(src);
    repo.publishUntrustedRoot();
    const kept = await roots.refresh(src);
    expect(kept!.digest).toBe(first.digest);
    const [st] = roots.status();
    expect(st!.state).toBe("stale");
    expect(st!.lastError?.message).toMatch(/refused|signature|threshold/i);
  });

  it("keeps verifying with the last good root while the mirror is unreachable; says stale; recovers", async () => {
    const roots = new TufTrustedRoots({ cacheDir: dir, limits: { fetchTimeoutMs: 2000 } });
    const first = await roots.get(src);
    await repo.stop();
    const kept = await roots.refresh(src);
    expect(kept!.digest).toBe(first.digest);
    expect((await roots.get(src)).digest).toBe(first.digest);
    const [st] = roots.status();
    expect(st).toMatchObject({ state: "stale", consecutiveFailures: 1, origin: "tuf" });
    expect(st!.lastError!.message).toContain(`TUF refresh from ${repo.url} failed`);
    expect(st!.fetchedAt).toBe(first.fetchedAt);
    await repo.start();
    await roots.refresh(src);
    expect(roots.status()[0]).toMatchObject({ state: "fresh", consecutiveFailures: 0 });
    expect(roots.status()[0]!.lastError).toBeUndefined();
  });

  it("after a restart with the mirror down, uses the verified disk cache (stale); offline never fetches", async () => {
    await new TufTrustedRoots({ cacheDir: dir }).get(src);
    await repo.stop();
    const restarted = new TufTrustedRoots({ cacheDir: dir, limits: { fetchTimeoutMs: 2000 } });
    await restarted.track([src]);
    const got = await restarted.get(src);
    expect(orgOf(got.json)).toBe("first");
    expect(restarted.status()[0]).toMatchObject({ state: "stale", origin: "cache" });

    repo.requests.length = 0;
    await repo.start();
    const offline = new TufTrustedRoots({ cacheDir: dir, offline: true });
    expect(orgOf((await offline.get(src)).json)).toBe("first");
    await offline.refresh(src);
    await offline.refreshDue();
    expect(repo.requests).toEqual([]);
    expect(offline.status()[0]).toMatchObject({ origin: "cache" });
    expect(offline.status()[0]!.nextRefreshAt).toBeUndefined();
  });

  it("offline with no cache: unavailable, saying where it looked", async () => {
    const offline = new TufTrustedRoots({ cacheDir: dir, offline: true });
    const e = await unavailable(offline.get(src));
    expect(e.message).toContain(`no cached trusted root from ${repo.url} in ${dir}`);
    expect(repo.requests).toEqual([]);
    expect(offline.status()[0]).toMatchObject({ state: "unavailable" });
  });

  it("refuses expired timestamp metadata with a clear error", async () => {
    repo.publish({ timestampExpires: "2020-01-01T00:00:00Z" });
    const roots = new TufTrustedRoots({ cacheDir: dir });
    const e = await unavailable(roots.get(src));
    expect(e.message).toMatch(/has expired \(Final timestamp\.json is expired\)/);
    expect(roots.status()[0]).toMatchObject({ state: "unavailable", consecutiveFailures: 1 });
    // The next verification within the backoff gets the same answer without asking the mirror.
    const n = repo.requests.length;
    expect((await unavailable(roots.get(src))).message).toMatch(/Final timestamp\.json is expired/);
    expect(repo.requests.length).toBe(n);
  });

  it("refuses expired targets metadata, keeping the last good root", async () => {
    const roots = new TufTrustedRoots({ cacheDir: dir });
    const first = await roots.get(src);
    repo.publish({ targetsExpires: "2020-01-01T00:00:00Z" });
    expect((await roots.refresh(src))!.digest).toBe(first.digest);
    expect(roots.status()[0]!.lastError!.message).toMatch(/targets\.json is expired/);
  });

  it("refuses a tampered trusted_root.json target (hash mismatch)", async () => {
    const file = [...repo.files.keys()].find((f) => f.endsWith(".trusted_root.json"))!;
    repo.tamper(file, (t) => t.replace('"first"', '"evil!"'));
    const roots = new TufTrustedRoots({ cacheDir: dir });
    const e = await unavailable(roots.get(src));
    expect(e.message).toMatch(/TUF refresh from .* failed|refused/);
    expect(e.message).toMatch(/hash|length/i);
  });

  it("refuses tampered signed metadata (signature no longer verifies)", async () => {
    repo.tamper("timestamp.json", (t) =>
      t.replace(/"version":(\d+)/, (_m, v) => `"version":${Number(v) + 5}`),
    );
    const roots = new TufTrustedRoots({ cacheDir: dir });
    const e = await unavailable(roots.get(src));
    expect(e.message).toMatch(/refused \(UnsignedMetadataError/);
  });

  it("refuses a disk cache whose trusted_root.json was altered", async () => {
    await new TufTrustedRoots({ cacheDir: dir }).get(src);
    const f = path.join(dir, src.id, "targets", "trusted_root.json");
    writeFileSync(f, readFileSync(f, "utf8").replace('"first"', '"evil!"'));
    const offline = new TufTrustedRoots({ cacheDir: dir, offline: true });
    const e = await unavailable(offline.get(src));
    expect(e.message).toMatch(/TUF cache of .* does not verify/);
  });

  it("refuses a repository without trusted_root.json, and an oversized one", async () => {
    const empty = new LocalTufRepo();
    empty.publish();
    await empty.start();
    try {
      const s = tufSource(empty.url, empty.initialRoot, 3600);
      const e = await new TufTrustedRoots({ cacheDir: dir }).get(s).catch((x: EngineError) => x);
      expect((e as EngineError).message).toContain(`no verified Sigstore trusted root from ${empty.url}`);
      expect((e as EngineError).message).toContain("has no trusted_root.json target");
    } finally {
      await empty.stop();
    }
    const small = new TufTrustedRoots({ cacheDir: dir, limits: { maxTrustedRootBytes: 100 } });
    const e = await small.get(src).catch((x: EngineError) => x);
    expect((e as EngineError).message).toMatch(/more than the 100-byte cap/);
  });

  it("gives up on a mirror that accepts but never answers (request deadline)", async () => {
    const hung = http.createServer(() => {});
    await new Promise<void>((r) => hung.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
      const roots = new TufTrustedRoots({ cacheDir: dir, limits: { fetchTimeoutMs: 300 } });
      const e = await unavailable(roots.get(tufSource(url, repo.initialRoot, 3600)));
      expect(e.message).toMatch(/timed out/);
    } finally {
      hung.closeAllConnections();
      hung.close();
    }
  });

  it("refreshes due sources on their interval and backs off after failures", async () => {
    let now = Date.now();
    const roots = new TufTrustedRoots({ cacheDir: dir, now: () => new Date(now) });
    const short = tufSource(repo.url, repo.initialRoot, 60);
    await roots.get(short);
    repo.setTrustedRoot(root("later"));
    await roots.refreshDue();
    expect(orgOf(roots.peek(short)!.json)).toBe("first");
    now += 61_000;
    await roots.refreshDue();
    expect(orgOf(roots.peek(short)!.json)).toBe("later");
    await repo.stop();
    now += 61_000;
    await roots.refreshDue();
    const st = roots.status()[0]!;
    expect(st.consecutiveFailures).toBe(1);
    // Next try after the backoff (30 s), not the full interval.
    expect(Date.parse(st.nextRefreshAt!) - Date.parse(st.lastAttemptAt!)).toBe(30_000);
  });
});
