// The name → image cache in front of Images.Get against an in-process gRPC stand-in for
// containerd's images + events services (real protocol, real grpc-js client): invalidation
// by image events, bypass while the stream is not proven live, reconnect after the server
// goes away, in-flight lookups racing an invalidation, wedged streams, bad events.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  CachedContainerdImages,
  decodeImageEventName,
  SYNC_TOPIC,
  subscriptionFilters,
} from "../../src/containerd/image-cache.js";
import { ContainerdImageResolver, ContainerdImages } from "../../src/containerd/images.js";
import { decodeSnapshotEvent } from "../../src/containerd/snapshot-events.js";
import type { Image } from "../../src/gen/containerd/images.js";
import { ImageCreate } from "../../src/gen/containerd/images.js";
import { waitFor } from "../support/procs.js";
import { type FakeContainerd, startFakeContainerd } from "./fake-containerd.js";

const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;
const NAME = "registry.example/team/app:v1";
const soon = () => Date.now() + 5_000;

describe("CachedContainerdImages", () => {
  let dir: string;
  let fake: FakeContainerd;
  let upstream: ContainerdImages;
  let cache: CachedContainerdImages | undefined;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-imgcache-"));
    fake = await startFakeContainerd(path.join(dir, "containerd.sock"));
    upstream = new ContainerdImages({ address: fake.socket });
  });
  afterEach(async () => {
    cache?.close();
    cache = undefined;
    upstream.close();
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const make = (o: Partial<ConstructorParameters<typeof CachedContainerdImages>[0]> = {}) => {
    cache = new CachedContainerdImages({
      address: fake.socket,
      images: upstream,
      backoffInitialMs: 20,
      backoffMaxMs: 200,
      handshakeTimeoutMs: 3_000,
      ...o,
    });
    return cache;
  };

  it("bypasses the cache until started and live, then answers repeats without containerd", async () => {
    fake.put(NAME, D1);
    const c = make();
    expect(c.state).toBe("connecting");
    await c.get(NAME, soon());
    await c.get(NAME, soon());
    expect(fake.getCalls).toBe(2);
    expect(c.stats()).toMatchObject({ bypassed: 2, entries: 0 });

    c.start();
    await c.waitConnected(10_000);
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D1);
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D1);
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D1);
    expect(fake.getCalls).toBe(3);
    expect(c.stats()).toMatchObject({ state: "connected", hits: 2, misses: 1, entries: 1, connects: 1 });
  });

  it("never caches NOT_FOUND", async () => {
    const c = make();
    c.start();
    await c.waitConnected(10_000);
    expect(await c.get("registry.example/nope:v1", soon())).toBeUndefined();
    expect(await c.get("registry.example/nope:v1", soon())).toBeUndefined();
    expect(fake.getCalls).toBe(2);
    expect(c.stats().entries).toBe(0);
  });

  it("drops a name on /images/update, /images/create and /images/delete", async () => {
    fake.put(NAME, D1);
    const c = make();
    c.start();
    await c.waitConnected(10_000);
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D1);

    // The tag is re-pulled to new content: the next lookup must see it.
    let inv = c.stats().invalidations;
    fake.put(NAME, D2);
    await waitFor("update event", () => c.stats().invalidations > inv);
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D2);
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D2);
    expect(fake.getCalls).toBe(2);

    // Deleted: the lookup misses (and the miss is not cached).
    inv = c.stats().invalidations;
    fake.remove(NAME);
    await waitFor("delete event", () => c.stats().invalidations > inv);
    expect(await c.get(NAME, soon())).toBeUndefined();

    // Created again under the same name.
    inv = c.stats().invalidations;
    fake.put(NAME, D1);
    await waitFor("create event", () => c.stats().invalidations > inv);
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D1);
    // Other names stay cached across an event for this one.
    inv = c.stats().invalidations;
    fake.put("registry.example/other:v1", D2);
    await waitFor("create event", () => c.stats().invalidations > inv);
    await c.get("registry.example/other:v1", soon());
    inv = c.stats().invalidations;
    fake.put(NAME, D2);
    await waitFor("update event", () => c.stats().invalidations > inv);
    const calls = fake.getCalls;
    expect((await c.get("registry.example/other:v1", soon()))?.target?.digest).toBe(D2);
    expect(fake.getCalls).toBe(calls);
  });

  it("does not store a lookup that an invalidation overlapped", async () => {
    fake.put(NAME, D1);
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let hold = true;
    const slow = {
      async get(name: string, deadline: number): Promise<Image | undefined> {
        const img = await upstream.get(name, deadline); // reads the old target…
        if (hold) await held; // …and answers only after the tag moved
        return img;
      },
    };
    const c = make({ images: slow });
    c.start();
    await c.waitConnected(10_000);
    const inflight = c.get(NAME, soon());
    await waitFor("lookup read", () => fake.getCalls === 1);
    const inv = c.stats().invalidations;
    fake.put(NAME, D2);
    await waitFor("update event", () => c.stats().invalidations > inv);
    hold = false;
    release();
    expect((await inflight)?.target?.digest).toBe(D1); // that answer was already in flight
    expect(c.stats().entries).toBe(0);
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D2);
  });

  it("clears and bypasses while containerd is gone, and reconnects when it is back", async () => {
    fake.put(NAME, D1);
    const c = make();
    c.start();
    await c.waitConnected(10_000);
    await c.get(NAME, soon());
    expect(c.stats().entries).toBe(1);

    await fake.stop();
    await waitFor("stream lost", () => c.state === "connecting");
    expect(c.stats().entries).toBe(0);
    // The record changes while nobody can see events.
    fake.images.set(NAME, (await import("./fake-containerd.js")).image(NAME, D2));
    await fake.start();
    // Whatever the stream state, the answer is the current record.
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D2);
    await c.waitConnected(15_000);
    expect(c.stats().connects).toBe(2);
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D2);
    const calls = fake.getCalls;
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D2);
    expect(fake.getCalls).toBe(calls);
  });

  it("goes live only once its sentinel comes back, even when the subscription registers late", async () => {
    fake.registerDelayMs = 400;
    const c = make();
    c.start();
    await c.waitConnected(10_000);
    expect(fake.subscribers()).toBe(1);
  });

  it("stays bypassed when the sentinel never comes back, and retries", async () => {
    fake.put(NAME, D1);
    fake.swallowSync = true;
    let failures = 0;
    const log = { info: (_o: object, m: string) => void (m.includes("not live") && failures++), warn() {} };
    const c = make({ handshakeTimeoutMs: 300, log });
    c.start();
    await waitFor("two failed handshakes", () => failures >= 2, 10_000);
    expect(c.state).toBe("connecting");
    await c.get(NAME, soon());
    await c.get(NAME, soon());
    expect(fake.getCalls).toBe(2);
    fake.swallowSync = false;
    await c.waitConnected(10_000);
  });

  it("drops the stream when a heartbeat is not echoed", async () => {
    fake.put(NAME, D1);
    const c = make({ heartbeatMs: 100, handshakeTimeoutMs: 400 });
    c.start();
    await c.waitConnected(10_000);
    await c.get(NAME, soon());
    expect(c.stats().entries).toBe(1);
    fake.swallowSync = true;
    await waitFor("heartbeat failure", () => c.state === "connecting", 10_000);
    expect(c.stats().entries).toBe(0);
    fake.swallowSync = false;
    await c.waitConnected(10_000);
  });

  it("clears everything on an image event it cannot decode", async () => {
    fake.put(NAME, D1);
    fake.put("registry.example/other:v1", D2);
    const c = make();
    c.start();
    await c.waitConnected(10_000);
    await c.get(NAME, soon());
    await c.get("registry.example/other:v1", soon());
    expect(c.stats().entries).toBe(2);
    fake.publishRaw({
      namespace: "k8s.io",
      topic: "/images/update",
      event: { typeUrl: "containerd.services.images.v1.ImageUpdate", value: Buffer.from([0x0a, 0xff]) },
    });
    await waitFor("cleared", () => c.stats().entries === 0);
    expect(c.state).toBe("connected");
  });

  it("ignores events of other namespaces and forged sentinels", async () => {
    fake.put(NAME, D1);
    const c = make();
    c.start();
    await c.waitConnected(10_000);
    await c.get(NAME, soon());
    // The fake filters by namespace like containerd; our own check is the second line.
    fake.publishRaw({
      namespace: "default",
      topic: "/images/delete",
      event: {
        typeUrl: "containerd.services.images.v1.ImageCreate",
        value: Buffer.from(ImageCreate.encode({ name: NAME, labels: {} }).finish()),
      },
    });
    fake.publishRaw({
      namespace: "k8s.io",
      topic: SYNC_TOPIC,
      event: { typeUrl: "x", value: Buffer.from("y") },
    });
    const calls = fake.getCalls;
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D1);
    expect(fake.getCalls).toBe(calls);
  });

  /** A containerd SnapshotPrepare / SnapshotRemove event (api/events/snapshot.proto). */
  const snapshotEvent = (
    kind: "prepare" | "remove",
    key: string,
    parent: string,
    snapshotter = "overlayfs",
  ) => {
    const w = new BinaryWriter().uint32(10).string(key);
    if (kind === "prepare") w.uint32(18).string(parent);
    w.uint32(42).string(snapshotter);
    return {
      namespace: "k8s.io",
      topic: `/snapshot/${kind}`,
      event: {
        typeUrl:
          kind === "prepare" ? "containerd.events.SnapshotPrepare" : "containerd.events.SnapshotRemove",
        value: Buffer.from(w.finish()),
      },
    };
  };

  it("knows the parent of snapshots containerd announced while live; a later prepare replaces it; forgets on bad events and disconnects", async () => {
    const c = make();
    fake.publishRaw(snapshotEvent("prepare", "ctr-0", "sha256:early"));
    expect(c.preparedParent("overlayfs", "ctr-0")).toBeUndefined(); // not subscribed yet
    c.start();
    await c.waitConnected(10_000);
    fake.publishRaw(snapshotEvent("prepare", "ctr-1", "sha256:chain-1"));
    fake.publishRaw(snapshotEvent("prepare", "ctr-2", "sha256:chain-2", "native"));
    await waitFor("events seen", () => c.preparedParent("native", "ctr-2") !== undefined);
    expect(c.preparedParent("overlayfs", "ctr-1")).toBe("sha256:chain-1");
    expect(c.preparedParent("native", "ctr-1")).toBeUndefined(); // per snapshotter
    expect(c.preparedParent("overlayfs", "ctr-2")).toBeUndefined();
    // The same key in a second snapshotter is kept beside the first.
    fake.publishRaw(snapshotEvent("prepare", "ctr-2", "sha256:chain-2o"));
    await waitFor("second snapshotter", () => c.preparedParent("overlayfs", "ctr-2") !== undefined);
    expect(c.preparedParent("overlayfs", "ctr-2")).toBe("sha256:chain-2o");
    expect(c.preparedParent("native", "ctr-2")).toBe("sha256:chain-2");
    fake.publishRaw(snapshotEvent("prepare", "ctr-1", "sha256:chain-1b"));
    await waitFor("replaced", () => c.preparedParent("overlayfs", "ctr-1") === "sha256:chain-1b");
    // Removals are not followed (snapshot-events.ts): not subscribed, so not delivered.
    fake.publishRaw(snapshotEvent("remove", "ctr-1", ""));
    fake.publishRaw(snapshotEvent("prepare", "ctr-6", "sha256:chain-6"));
    await waitFor("next prepare seen", () => c.preparedParent("overlayfs", "ctr-6") !== undefined);
    expect(c.preparedParent("overlayfs", "ctr-1")).toBe("sha256:chain-1b");
    // Another namespace's snapshot is not ours.
    fake.publishRaw({ ...snapshotEvent("prepare", "ctr-3", "sha256:x"), namespace: "default" });
    // One we cannot read may be about any container: all forgotten.
    fake.publishRaw({
      ...snapshotEvent("prepare", "ctr-4", "sha256:y"),
      event: { typeUrl: "containerd.events.SnapshotPrepare", value: Buffer.from([0x0a, 0xff]) },
    });
    await waitFor("cleared", () => c.preparedParent("native", "ctr-2") === undefined);
    expect(c.preparedParent("overlayfs", "ctr-3")).toBeUndefined();
    fake.publishRaw(snapshotEvent("prepare", "ctr-5", "sha256:chain-5"));
    await waitFor("seen", () => c.preparedParent("overlayfs", "ctr-5") !== undefined);
    await fake.stop();
    await waitFor("disconnected", () => c.state !== "connected");
    expect(c.preparedParent("overlayfs", "ctr-5")).toBeUndefined();
  });

  it("serves a hit at once for a create whose own snapshot event arrived, after every image event published before it", async () => {
    fake.put(NAME, D1);
    const c = make();
    c.start();
    await c.waitConnected(10_000);
    expect((await c.get(NAME, soon()))?.target?.digest).toBe(D1); // cached
    const calls = fake.getCalls;

    // A hit for a container whose prepare event has not arrived waits for waiting I/O.
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    expect((await c.get(NAME, soon(), "ctr-unknown"))?.target?.digest).toBe(D1);
    expect(turned).toBe(true);
    expect(c.stats().orderedHits).toBe(0);

    // The tag moves, then the create prepares its snapshot: containerd delivers both in that
    // order on one stream, so once the prepare is seen the move is applied — no stale hit.
    fake.put(NAME, D2);
    fake.publishRaw(snapshotEvent("prepare", "ctr-9", "sha256:chain-9"));
    await waitFor("prepare seen", () => c.preparedParent("overlayfs", "ctr-9") !== undefined);
    expect((await c.get(NAME, soon(), "ctr-9"))?.target?.digest).toBe(D2);
    expect(fake.getCalls).toBe(calls + 1); // a miss: the move had dropped the name

    // Now a hit, served without yielding to the event loop.
    turned = false;
    setImmediate(() => {
      turned = true;
    });
    expect((await c.get(NAME, soon(), "ctr-9"))?.target?.digest).toBe(D2);
    expect(turned).toBe(false);
    expect(fake.getCalls).toBe(calls + 1);
    expect(c.stats()).toMatchObject({ orderedHits: 1 });

    // peek is that same answer without a promise, and nothing for an unseen container.
    expect(c.peek(NAME, "ctr-9")?.target?.digest).toBe(D2);
    expect(c.peek(NAME, "ctr-unknown")).toBeUndefined();
    expect(c.peek("registry.example/not-cached:v1", "ctr-9")).toBeUndefined();
    // The resolver's synchronous path reads it; image IDs and unseen creates go the long way.
    const resolver = new ContainerdImageResolver(c);
    expect(resolver.resolveNow(NAME, "ctr-9")).toEqual({ reference: NAME, digest: D2 });
    expect(resolver.resolveNow(NAME, "ctr-unknown")).toBeUndefined();
    expect(resolver.resolveNow(D2, "ctr-9")).toBeUndefined();
    // A pinned name whose record targets another digest is refused, as resolve() refuses it.
    const pinned = `registry.example/team/app@${D1}`;
    const inv = c.stats().invalidations;
    fake.put(pinned, D2);
    await waitFor("create event", () => c.stats().invalidations > inv);
    await expect(resolver.resolve(pinned, { deadline: soon() })).rejects.toThrow(/not the pinned digest/);
    expect(() => resolver.resolveNow(pinned, "ctr-9")).toThrow(/not the pinned digest/);
    expect(fake.getCalls).toBeGreaterThan(calls + 1);

    // A snapshot event from before a reconnect proves nothing about the new stream.
    await fake.stop();
    await waitFor("disconnected", () => c.state !== "connected");
    expect(c.preparedParent("overlayfs", "ctr-9")).toBeUndefined();
    expect(c.peek(NAME, "ctr-9")).toBeUndefined();
  });

  it("asks containerd for its topics by equality only (containerd recompiles a ~= pattern on every event)", () => {
    const f = subscriptionFilters("k8s.io");
    expect(f.some((x) => x.includes("~="))).toBe(false);
    expect(f).toEqual(
      ["/snapshot/prepare", "/images/create", "/images/update", "/images/delete", SYNC_TOPIC].map(
        (t) => `namespace=="k8s.io",topic==${JSON.stringify(t)}`,
      ),
    );
  });

  it("decodes only well-formed snapshot events of the right topic and type", () => {
    const ok = snapshotEvent("prepare", "k", "p");
    expect(decodeSnapshotEvent(ok)).toEqual({
      key: "k",
      parent: "p",
      snapshotter: "overlayfs",
    });
    expect(decodeSnapshotEvent({ ...ok, topic: "/snapshot/remove" })).toBeUndefined();
    expect(
      decodeSnapshotEvent({ ...ok, event: { ...ok.event, typeUrl: "containerd.events.SnapshotCommit" } }),
    ).toBeUndefined();
    const noSnapshotter = {
      ...ok,
      event: { ...ok.event, value: Buffer.from(new BinaryWriter().uint32(10).string("k").finish()) },
    };
    expect(decodeSnapshotEvent(noSnapshotter)).toBeUndefined();
    expect(decodeSnapshotEvent({ ...ok, event: undefined })).toBeUndefined();
  });

  it("is what ContainerdImageResolver reads through", async () => {
    fake.put(NAME, D1);
    const c = make();
    c.start();
    await c.waitConnected(10_000);
    const r = new ContainerdImageResolver(c);
    expect(await r.resolve(NAME, { deadline: soon() })).toEqual({ reference: NAME, digest: D1 });
    expect(await r.resolve(NAME, { deadline: soon() })).toEqual({ reference: NAME, digest: D1 });
    expect(fake.getCalls).toBe(1);
    const inv = c.stats().invalidations;
    fake.put(NAME, D2);
    await waitFor("update event", () => c.stats().invalidations > inv);
    expect(await r.resolve(NAME, { deadline: soon() })).toEqual({ reference: NAME, digest: D2 });
    await expect(r.resolve("registry.example/none:v1", { deadline: soon() })).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
  });

  it("close() stops the stream and bypasses from then on", async () => {
    fake.put(NAME, D1);
    const c = make();
    c.start();
    await c.waitConnected(10_000);
    c.close();
    expect(c.state).toBe("closed");
    await waitFor("subscription gone", () => fake.subscribers() === 0);
    await c.get(NAME, soon());
    await c.get(NAME, soon());
    expect(fake.getCalls).toBe(2);
  });
});

describe("decodeImageEventName", () => {
  const ev = (topic: string, typeUrl: string) => ({
    namespace: "k8s.io",
    topic,
    event: { typeUrl, value: Buffer.from(ImageCreate.encode({ name: NAME, labels: {} }).finish()) },
  });
  it("decodes the three image events, with or without the type URL prefix", () => {
    expect(decodeImageEventName(ev("/images/create", "containerd.services.images.v1.ImageCreate"))).toBe(
      NAME,
    );
    expect(decodeImageEventName(ev("/images/update", "containerd.services.images.v1.ImageUpdate"))).toBe(
      NAME,
    );
    expect(decodeImageEventName(ev("/images/delete", "containerd.services.images.v1.ImageDelete"))).toBe(
      NAME,
    );
    expect(
      decodeImageEventName(
        ev("/images/create", "type.googleapis.com/containerd.services.images.v1.ImageCreate"),
      ),
    ).toBe(NAME);
  });
  it("refuses a topic/type mismatch, unknown types, empty or missing payloads", () => {
    expect(
      decodeImageEventName(ev("/images/delete", "containerd.services.images.v1.ImageCreate")),
    ).toBeUndefined();
    expect(decodeImageEventName(ev("/images/create", "containerd.services.images.v1.Other"))).toBeUndefined();
    expect(
      decodeImageEventName({
        namespace: "k8s.io",
        topic: "/images/create",
        event: { typeUrl: "containerd.services.images.v1.ImageCreate", value: Buffer.alloc(0) },
      }),
    ).toBeUndefined();
    expect(decodeImageEventName({ namespace: "k8s.io", topic: "/images/create" })).toBeUndefined();
  });
});
