// The gate's image-name cache (src/containerd/image-cache.ts) on a real containerd 2.1.9:
// its liveness sentinel round-trips through containerd's events service, a tag re-pulled
// to new content through CRI is re-resolved, `ctr image rm` makes the name miss, and after
// a containerd restart the stream comes back and the answers stay right.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CachedContainerdImages } from "../src/containerd/image-cache.js";
import { ContainerdImageResolver, ContainerdImages } from "../src/containerd/images.js";
import { pushBusyboxImage } from "../test/support/images.js";
import { waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { type Containerd, startContainerd } from "./lib/containerd.js";

let registry: LocalRegistry;
let registryDir: string;
let ctrd: Containerd;
let images: ContainerdImages;
let cache: CachedContainerdImages;
let resolver: ContainerdImageResolver;
const lost: string[] = [];
const soon = () => ({ deadline: Date.now() + 10_000 });

beforeAll(async () => {
  registryDir = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-imgcache-"));
  registry = await startRegistry(registryDir);
  ctrd = await startContainerd();
  images = new ContainerdImages({ address: ctrd.address });
  cache = new CachedContainerdImages({
    address: ctrd.address,
    images,
    log: {
      info: (o, m) => m.includes("not live") && lost.push(JSON.stringify(o)),
      warn: (o, m) => m.includes("not live") && lost.push(JSON.stringify(o)),
    },
  });
  resolver = new ContainerdImageResolver(cache);
  cache.start();
});

afterAll(async () => {
  cache?.close();
  images?.close();
  await ctrd?.stop();
  await registry?.stop();
  if (registryDir) rmSync(registryDir, { recursive: true, force: true });
});

describe("image cache on real containerd", () => {
  it("goes live through containerd's events service and answers repeats from the cache", async () => {
    await cache.waitConnected(30_000);
    const a = pushBusyboxImage(registry.host, "test/cached", "v1", { marker: "cached-a" });
    await ctrd.cri.pullImage(a.ref);
    expect(await resolver.resolve(a.ref, soon())).toEqual({ reference: a.ref, digest: a.digest });
    const before = cache.stats();
    expect(await resolver.resolve(a.ref, soon())).toEqual({ reference: a.ref, digest: a.digest });
    expect(cache.stats().hits).toBe(before.hits + 1);
    expect(cache.stats().misses).toBe(before.misses);
  });

  it("re-resolves a tag re-pulled to new content (the next resolve after PullImage returns)", async () => {
    await cache.waitConnected(30_000);
    const v1 = pushBusyboxImage(registry.host, "test/moving", "v1", { marker: "moving-1" });
    await ctrd.cri.pullImage(v1.ref);
    expect((await resolver.resolve(v1.ref, soon())).digest).toBe(v1.digest);
    expect((await resolver.resolve(v1.ref, soon())).digest).toBe(v1.digest);

    const v2 = pushBusyboxImage(registry.host, "test/moving", "v1", { marker: "moving-2" });
    expect(v2.digest).not.toBe(v1.digest);
    await ctrd.cri.pullImage(v2.ref);
    // No wait for the event: this is the ordering the gate relies on (kubelet creates only
    // after PullImage returned).
    expect((await resolver.resolve(v2.ref, soon())).digest).toBe(v2.digest);
    expect((await resolver.resolve(v2.ref, soon())).digest).toBe(v2.digest);
  });

  it("misses after `ctr image rm`", async () => {
    await cache.waitConnected(30_000);
    const img = pushBusyboxImage(registry.host, "test/removed", "v1", { marker: "removed" });
    await ctrd.cri.pullImage(img.ref);
    expect((await resolver.resolve(img.ref, soon())).digest).toBe(img.digest);
    expect((await resolver.resolve(img.ref, soon())).digest).toBe(img.digest); // cached
    ctrd.ctr(["-n", "k8s.io", "images", "rm", img.ref]);
    await expect(resolver.resolve(img.ref, soon())).rejects.toMatchObject({ code: "NOT_FOUND" });
    // Still a miss (NOT_FOUND is never cached) until it is pulled again.
    await expect(resolver.resolve(img.ref, soon())).rejects.toMatchObject({ code: "NOT_FOUND" });
    await ctrd.cri.pullImage(img.ref);
    expect((await resolver.resolve(img.ref, soon())).digest).toBe(img.digest);
  });

  it("reconnects after a containerd restart and keeps answering correctly", async () => {
    await cache.waitConnected(30_000);
    const v1 = pushBusyboxImage(registry.host, "test/restart", "v1", { marker: "restart-1" });
    await ctrd.cri.pullImage(v1.ref);
    expect((await resolver.resolve(v1.ref, soon())).digest).toBe(v1.digest);
    expect(cache.stats().entries).toBeGreaterThan(0);
    const connects = cache.stats().connects;
    const lostBefore = lost.length;

    await ctrd.restart();
    await waitFor("stream loss noticed", () => lost.length > lostBefore, 30_000);
    await waitFor("stream live again", () => cache.stats().connects > connects, 30_000);
    expect(cache.state).toBe("connected");
    // Cleared on the loss: the first answer comes from containerd again, then from the cache.
    await waitFor(
      "images API back",
      async () => (await resolver.resolve(v1.ref, soon())).digest === v1.digest,
      30_000,
    );
    const hits = cache.stats().hits;
    expect((await resolver.resolve(v1.ref, soon())).digest).toBe(v1.digest);
    expect(cache.stats().hits).toBe(hits + 1);

    // Events flow on the new stream: a tag move after the restart is seen too.
    const v2 = pushBusyboxImage(registry.host, "test/restart", "v1", { marker: "restart-2" });
    await ctrd.cri.pullImage(v2.ref);
    expect((await resolver.resolve(v2.ref, soon())).digest).toBe(v2.digest);
  });
});
