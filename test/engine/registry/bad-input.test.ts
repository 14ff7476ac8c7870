// Misbehaving registries: every case ends in a typed error or a bounded result, never a
// hang or an unbounded read.
import { afterEach, describe, expect, it } from "vitest";
import { createRegistryClient, type RegistryClient } from "../../../src/engine/registry/index.js";
import { type FakeRegistry, putImage, sha256, startFakeRegistry } from "./fake-registry.js";

let reg: FakeRegistry | undefined;
let client: RegistryClient | undefined;
afterEach(async () => {
  client?.close();
  client = undefined;
  await reg?.close();
  reg = undefined;
});

function setClient(c: RegistryClient) {
  client = c;
}

async function setup(limits = {}, timeouts = {}) {
  reg = await startFakeRegistry();
  client = createRegistryClient({ limits, timeouts });
  return { reg, client, repo: { registry: reg.host, repository: "app" } };
}

const OCI = "application/vnd.oci.image.manifest.v1+json";

describe("a misbehaving registry", () => {
  it("content that does not match the requested digest is DIGEST_MISMATCH", async () => {
    const { reg, client, repo } = await setup();
    const img = putImage(reg, "app", "v1");
    const wanted = `sha256:${"a".repeat(64)}`;
    reg.use((req, res) => {
      if (!req.url?.endsWith(wanted)) return false;
      const other = JSON.stringify({ schemaVersion: 2, mediaType: OCI, config: {}, layers: [] });
      res.writeHead(200, { "content-type": OCI, "docker-content-digest": wanted });
      res.end(other);
      return true;
    });
    await expect(client.getManifest(repo, wanted)).rejects.toMatchObject({ code: "DIGEST_MISMATCH" });
    await expect(client.getBlob(repo, { mediaType: "x", digest: wanted, size: 10 })).rejects.toMatchObject({
      code: expect.stringMatching(/DIGEST_MISMATCH|TOO_LARGE/),
    });
    // By tag: a Docker-Content-Digest header that does not match the body.
    reg.use((req, res) => {
      if (!req.url?.endsWith("/manifests/lying")) return false;
      res.writeHead(200, { "content-type": OCI, "docker-content-digest": img.digest });
      res.end(JSON.stringify({ schemaVersion: 2, mediaType: OCI, config: {}, layers: [], x: 1 }));
      return true;
    });
    await expect(client.getManifest(repo, "lying")).rejects.toMatchObject({ code: "DIGEST_MISMATCH" });
  });

  it("a blob whose size differs from its descriptor is refused", async () => {
    const { reg, client, repo } = await setup();
    const d = reg.putBlob("app", "hello world");
    await expect(client.getBlob(repo, { mediaType: "x", digest: d, size: 5 })).rejects.toMatchObject({
      code: "TOO_LARGE",
    });
    await expect(client.getBlob(repo, { mediaType: "x", digest: d, size: 50 })).rejects.toMatchObject({
      code: "DIGEST_MISMATCH",
    });
    expect(Buffer.from(await client.getBlob(repo, { mediaType: "x", digest: d, size: 11 })).toString()).toBe(
      "hello world",
    );
  });

  it("an oversized manifest is TOO_LARGE, by Content-Length or by what is actually sent", async () => {
    const { reg, client, repo } = await setup({ maxManifestBytes: 64 * 1024 });
    const big = `sha256:${"b".repeat(64)}`;
    const endless = `sha256:${"c".repeat(64)}`;
    let sent = 0;
    reg.use((req, res) => {
      if (req.url?.endsWith(big)) {
        res.writeHead(200, { "content-type": OCI, "content-length": String(10 * 1024 * 1024) });
        res.write(Buffer.alloc(1024));
        return true;
      }
      if (req.url?.endsWith(endless)) {
        // No Content-Length (chunked), and it never ends: the cap must stop the read.
        res.writeHead(200, { "content-type": OCI });
        const chunk = Buffer.alloc(16 * 1024, 0x20);
        const pump = () => {
          while (!res.destroyed && sent < 512 * 1024 * 1024) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once("drain", pump);
          }
        };
        res.on("close", () => res.destroy());
        pump();
        return true;
      }
      return false;
    });
    await expect(client.getManifest(repo, big)).rejects.toMatchObject({ code: "TOO_LARGE" });
    await expect(client.getManifest(repo, endless)).rejects.toMatchObject({ code: "TOO_LARGE" });
    expect(sent).toBeLessThan(64 * 1024 * 1024);
  });

  it("a blob over the configured cap is refused before any request", async () => {
    const { reg, client, repo } = await setup({ maxBlobBytes: 1024 });
    const before = reg.requests.length;
    await expect(
      client.getBlob(repo, { mediaType: "x", digest: sha256("x"), size: 4096 }),
    ).rejects.toMatchObject({
      code: "TOO_LARGE",
    });
    expect(reg.requests.length).toBe(before);
  });

  it("a truncated body is REGISTRY_ERROR", async () => {
    const { reg, client, repo } = await setup();
    const d = `sha256:${"d".repeat(64)}`;
    reg.use((req, res) => {
      if (!req.url?.endsWith(d)) return false;
      res.writeHead(200, { "content-type": OCI, "content-length": "1000" });
      res.write(Buffer.alloc(500, 0x20));
      setTimeout(() => res.socket?.destroy(), 20);
      return true;
    });
    await expect(client.getManifest(repo, d)).rejects.toMatchObject({ code: "REGISTRY_ERROR" });
  });

  it("5xx is REGISTRY_ERROR (transient)", async () => {
    const { reg, client, repo } = await setup();
    reg.use((_req, res) => {
      res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "try later" }] }));
      return true;
    });
    const e = await client.getManifest(repo, "v1").catch((x) => x);
    expect(e).toMatchObject({ code: "REGISTRY_ERROR" });
    expect(e.transient).toBe(true);
    expect(e.message).toContain("503");
  });

  it("redirects are followed a bounded number of times; loops fail", async () => {
    const s = await setup({ maxRedirects: 3 });
    const { reg, repo } = s;
    let client = s.client;
    const d = reg.putBlob("app", "redirected content");
    reg.use((req, res) => {
      const u = req.url ?? "";
      if (u.startsWith("/hop/")) {
        const n = Number(u.slice(5));
        res.writeHead(307, { location: n > 0 ? `/hop/${n - 1}` : `/v2/app/blobs/${d}?final=1` });
        res.end();
        return true;
      }
      if (u.startsWith("/loop")) {
        res.writeHead(302, { location: u === "/loop/a" ? "/loop/b" : "/loop/a" });
        res.end();
        return true;
      }
      return false;
    });
    const via = (target: string) =>
      reg.use((req, res) => {
        if (!req.url?.startsWith(`/v2/app/blobs/${d}`) || req.url.includes("final")) return false;
        res.writeHead(307, { location: target });
        res.end();
        return true;
      });
    via("/hop/1");
    expect(Buffer.from(await client.getBlob(repo, { mediaType: "x", digest: d, size: 18 })).toString()).toBe(
      "redirected content",
    );
    client.close();
    client = createRegistryClient({ limits: { maxRedirects: 3 }, cacheBytes: 0 });
    setClient(client);
    reg.use((req, res) => {
      if (!req.url?.includes("/manifests/loop")) return false;
      res.writeHead(302, { location: "/loop/a" });
      res.end();
      return true;
    });
    await expect(client.getManifest(repo, "loop")).rejects.toMatchObject({
      code: "REGISTRY_ERROR",
      message: expect.stringMatching(/loop/),
    });
    reg.use((req, res) => {
      if (!req.url?.includes("/manifests/far")) return false;
      res.writeHead(302, { location: "/hop/10" });
      res.end();
      return true;
    });
    await expect(client.getManifest(repo, "far")).rejects.toMatchObject({
      code: "REGISTRY_ERROR",
      message: expect.stringMatching(/more than 3/),
    });
  });

  it("a hung server is REGISTRY_TIMEOUT, before headers and mid-body", async () => {
    const { reg, client, repo } = await setup({}, { totalMs: 400 });
    reg.use((req, res) => {
      if (req.url?.includes("/manifests/hang")) return true; // never answers
      if (req.url?.includes("/manifests/slow")) {
        res.writeHead(200, { "content-type": OCI, "content-length": "100" });
        res.write("{");
        return true;
      }
      return false;
    });
    const t0 = Date.now();
    await expect(client.getManifest(repo, "hang")).rejects.toMatchObject({ code: "REGISTRY_TIMEOUT" });
    await expect(client.getManifest(repo, "slow")).rejects.toMatchObject({ code: "REGISTRY_TIMEOUT" });
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it("an AbortSignal cancels a request in flight", async () => {
    const { reg, client, repo } = await setup();
    reg.use((req) => Boolean(req.url?.includes("/manifests/hang")));
    const ac = new AbortController();
    const p = client.getManifest(repo, "hang", { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toMatchObject({ code: "CANCELLED" });
  });

  it("an unreachable registry is REGISTRY_UNAVAILABLE", async () => {
    const { reg, client } = await setup();
    const host = reg.host;
    await reg.close();
    await expect(client.getManifest(`${host}/app:v1`)).rejects.toMatchObject({
      code: "REGISTRY_UNAVAILABLE",
    });
  });

  it("a malformed or missing WWW-Authenticate is REGISTRY_AUTH", async () => {
    const { reg, client, repo } = await setup();
    reg.use((req, res) => {
      const u = req.url ?? "";
      if (u.includes("/manifests/bad"))
        res.setHeader("www-authenticate", 'Bearer realm="http://127.0.0.1:1/token,service=oops');
      else if (u.includes("/manifests/norealm")) res.setHeader("www-authenticate", 'Bearer service="s"');
      else if (u.includes("/manifests/weird")) res.setHeader("www-authenticate", "Negotiate");
      else if (!u.includes("/manifests/none")) return false;
      res.writeHead(401);
      res.end();
      return true;
    });
    for (const t of ["bad", "norealm", "weird", "none"]) {
      await expect(client.getManifest(repo, t)).rejects.toMatchObject({ code: "REGISTRY_AUTH" });
    }
  });

  it("garbage manifests are MALFORMED or UNSUPPORTED", async () => {
    const { reg, client, repo } = await setup();
    const notJson = reg.putManifest("app", "not json {", { tag: "garbage" });
    reg.putManifest("app", JSON.stringify({ schemaVersion: 1, name: "x" }), {
      tag: "schema1",
      mediaType: "application/vnd.docker.distribution.manifest.v1+prettyjws",
    });
    await expect(client.getManifest(repo, notJson)).rejects.toMatchObject({ code: "MALFORMED" });
    await expect(client.getManifest(repo, "schema1")).rejects.toMatchObject({ code: "UNSUPPORTED" });
  });
});
