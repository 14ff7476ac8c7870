// Referrers API paging/filters and bearer-token auth against an in-test registry.
import { afterEach, describe, expect, it } from "vitest";
import {
  createRegistryClient,
  discoverSignatures,
  type RegistryClient,
} from "../../../src/engine/registry/index.js";
import { type FakeRegistry, putImage, putNotationLike, putSbom, startFakeRegistry } from "./fake-registry.js";

const NOTARY = "application/vnd.cncf.notary.signature";
let reg: FakeRegistry | undefined;
let client: RegistryClient | undefined;
afterEach(async () => {
  client?.close();
  client = undefined;
  await reg?.close();
  reg = undefined;
});

describe("Referrers API", () => {
  it("follows Link pages and finds every signature; SBOMs are skipped before fetching", async () => {
    reg = await startFakeRegistry({ referrersApi: true, pageSize: 10 });
    const img = putImage(reg, "app", "v1");
    const sigs = Array.from({ length: 12 }, (_, i) => putNotationLike(reg as FakeRegistry, "app", img, i));
    const sboms = Array.from({ length: 13 }, (_, i) => putSbom(reg as FakeRegistry, "app", img, i));
    client = createRegistryClient();
    const listed = await client.listReferrers({ registry: reg.host, repository: "app" }, img.digest);
    expect(listed.source).toBe("referrers-api");
    expect(listed.descriptors).toHaveLength(25);
    expect(listed.truncated).toBe(false);
    expect(reg.requests.filter((r) => r.includes("/referrers/"))).toHaveLength(3);

    reg.requests.length = 0;
    const src = await discoverSignatures(
      client,
      { reference: `${reg.host}/app:v1`, digest: img.digest },
      { kinds: ["notation"] },
    );
    expect(src.artifacts.map((a) => a.digest).sort()).toEqual([...sigs].sort());
    expect(src.artifacts.every((a) => a.source === "referrers-api" && a.kind === "notation")).toBe(true);
    // SBOM manifests were never fetched; signature manifests were cached from... nothing: fetched once each.
    for (const d of sboms) expect(reg.requests.some((r) => r.endsWith(d))).toBe(false);
    // No tag-schema fallback when the API answers.
    expect(reg.requests.some((r) => r.includes("/manifests/sha256-"))).toBe(false);
  });

  it("uses server-side artifactType filtering when OCI-Filters-Applied says so", async () => {
    reg = await startFakeRegistry({ referrersApi: true, filters: true });
    const img = putImage(reg, "app", "v1");
    putNotationLike(reg, "app", img, 1);
    putSbom(reg, "app", img, 1);
    client = createRegistryClient();
    const r = await client.listReferrers({ registry: reg.host, repository: "app" }, img.digest, {
      artifactType: NOTARY,
    });
    expect(r.filtersApplied).toBe(true);
    expect(r.descriptors.map((d) => d.artifactType)).toEqual([NOTARY]);
    expect(reg.requests.at(-1)).toContain(`artifactType=${encodeURIComponent(NOTARY)}`);
  });

  it("filters client-side when the server ignores artifactType", async () => {
    reg = await startFakeRegistry({ referrersApi: true, filters: false });
    const img = putImage(reg, "app", "v1");
    putNotationLike(reg, "app", img, 1);
    putSbom(reg, "app", img, 1);
    client = createRegistryClient();
    const r = await client.listReferrers({ registry: reg.host, repository: "app" }, img.digest, {
      artifactType: NOTARY,
    });
    expect(r.filtersApplied).toBe(false);
    expect(r.descriptors.map((d) => d.artifactType)).toEqual([NOTARY]);
  });

  it("10,000 referrers in one page give a bounded, flagged result", async () => {
    reg = await startFakeRegistry({ referrersApi: true });
    const img = putImage(reg, "app", "v1");
    for (let i = 0; i < 10_000; i++) putSbom(reg, "app", img, i);
    client = createRegistryClient({ limits: { maxReferrers: 1000 } });
    const r = await client.listReferrers({ registry: reg.host, repository: "app" }, img.digest);
    expect(r.descriptors).toHaveLength(1000);
    expect(r.truncated).toBe(true);
    const src = await discoverSignatures(client, { reference: `${reg.host}/app:v1`, digest: img.digest });
    expect(src.artifacts).toEqual([]);
    expect(src.truncated).toBe(true);
  });

  it("10,000 referrers in pages of 10 stop at the page cap", async () => {
    reg = await startFakeRegistry({ referrersApi: true, pageSize: 10 });
    const img = putImage(reg, "app", "v1");
    for (let i = 0; i < 10_000; i++) putNotationLike(reg, "app", img, i);
    client = createRegistryClient({ limits: { maxReferrerPages: 20, maxArtifacts: 5 } });
    const r = await client.listReferrers({ registry: reg.host, repository: "app" }, img.digest);
    expect(r.descriptors).toHaveLength(200);
    expect(r.truncated).toBe(true);
    expect(reg.requests.filter((q) => q.includes("/referrers/"))).toHaveLength(20);
    reg.requests.length = 0;
    const src = await discoverSignatures(client, { reference: `${reg.host}/app:v1`, digest: img.digest });
    // At most maxArtifacts candidate manifests are fetched.
    expect(src.artifacts).toHaveLength(5);
    expect(src.truncated).toBe(true);
  });

  it("ignores a referrer whose manifest names another subject", async () => {
    reg = await startFakeRegistry({ referrersApi: false });
    const img = putImage(reg, "app", "v1");
    const other = putImage(reg, "app", "v2");
    const foreign = putNotationLike(reg, "app", other, 1);
    const body = await (await fetch(`${reg.url}/v2/app/manifests/${foreign}`)).arrayBuffer();
    // A hand-made tag index for `img` that lists a signature of `other`.
    reg.putManifest(
      "app",
      {
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [
          {
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            digest: foreign,
            size: body.byteLength,
            artifactType: NOTARY,
          },
        ],
      },
      { tag: img.digest.replace(":", "-") },
    );
    client = createRegistryClient();
    const src = await discoverSignatures(client, { reference: `${reg.host}/app:v1`, digest: img.digest });
    expect(src.artifacts).toEqual([]);
  });
});

describe("bearer token auth", () => {
  it("fetches a token on 401, reuses it until expiry, then fetches a new one", async () => {
    let now = Date.parse("2025-06-01T00:00:00Z");
    reg = await startFakeRegistry({
      referrersApi: true,
      auth: { kind: "bearer", username: "alice", password: "s3cret", ttlSeconds: 300, now: () => now },
    });
    const img = putImage(reg, "team/app", "v1");
    putNotationLike(reg, "team/app", img, 1);
    client = createRegistryClient({
      credentials: { [reg.host]: { username: "alice", password: "s3cret" } },
      now: () => now,
    });
    const repo = { registry: reg.host, repository: "team/app" };
    await client.getManifest(repo, "v1");
    expect(reg.tokenRequests).toHaveLength(1);
    expect(reg.tokenRequests[0]).toMatchObject({
      scope: "repository:team/app:pull",
      service: "fake-registry",
    });
    const d = await client.listReferrers(repo, img.digest);
    expect(d.descriptors).toHaveLength(1);
    await client.getManifest(repo, "v1");
    expect(reg.tokenRequests).toHaveLength(1);
    // Past expiry: the client refreshes proactively (no failed request first).
    now += 301_000;
    const before = reg.requests.length;
    await client.getManifest(repo, "v1");
    expect(reg.tokenRequests).toHaveLength(2);
    expect(reg.requests.length - before).toBe(2); // token + manifest, no 401 round trip
  });

  it("a token the server stops accepting is replaced once", async () => {
    let now = Date.parse("2025-06-01T00:00:00Z");
    const serverNow = { t: now };
    reg = await startFakeRegistry({
      auth: { kind: "bearer", username: "u", password: "p", ttlSeconds: 3600, now: () => serverNow.t },
    });
    putImage(reg, "app", "v1");
    client = createRegistryClient({
      credentials: { [reg.host]: { username: "u", password: "p" } },
      now: () => now,
    });
    const repo = { registry: reg.host, repository: "app" };
    await client.getManifest(repo, "v1");
    // The server's clock runs ahead: our cached token is dead for it.
    serverNow.t += 7200_000;
    now += 1000;
    await client.getManifest(repo, "v1");
    expect(reg.tokenRequests).toHaveLength(2);
  });

  it("wrong credentials are REGISTRY_AUTH", async () => {
    reg = await startFakeRegistry({
      auth: { kind: "bearer", username: "u", password: "p", ttlSeconds: 60, now: Date.now },
    });
    putImage(reg, "app", "v1");
    client = createRegistryClient({ credentials: { [reg.host]: { username: "u", password: "wrong" } } });
    await expect(client.getManifest({ registry: reg.host, repository: "app" }, "v1")).rejects.toMatchObject({
      code: "REGISTRY_AUTH",
    });
  });

  it("basic auth with credentials from a Docker config file", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const os = await import("node:os");
    const path = await import("node:path");
    reg = await startFakeRegistry({ auth: { kind: "basic", username: "bob", password: "pw:with:colons" } });
    putImage(reg, "app", "v1");
    const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-dockercfg-"));
    const file = path.join(dir, "config.json");
    writeFileSync(
      file,
      JSON.stringify({
        auths: { [`https://${reg.host}`]: { auth: Buffer.from("bob:pw:with:colons").toString("base64") } },
      }),
    );
    client = createRegistryClient({ dockerConfigFiles: [path.join(dir, "missing.json"), file] });
    const m = await client.getManifest(`${reg.host}/app:v1`);
    expect(m.descriptor.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    const anon = createRegistryClient();
    try {
      await expect(anon.getManifest(`${reg.host}/app:v1`)).rejects.toMatchObject({ code: "REGISTRY_AUTH" });
    } finally {
      anon.close();
    }
  });
});
