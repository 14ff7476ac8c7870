// ContainerdRootfs against an in-process stand-in for containerd's snapshots + content gRPC
// services (real protocol via the generated definitions): the container's snapshot parent
// vs the chain IDs of every manifest a judged image covers, and bad content refused clearly.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContainerdRootfs, chainId } from "../../src/containerd/rootfs.js";
import {
  ContentService,
  type ReadContentRequest,
  type ReadContentResponse,
} from "../../src/gen/containerd/content.js";
import {
  type Info,
  Kind,
  SnapshotsService,
  type StatSnapshotRequest,
  type StatSnapshotResponse,
} from "../../src/gen/containerd/snapshots.js";

const sha = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const blobs = new Map<string, Buffer>();
const put = (o: unknown): string => {
  const b = Buffer.from(typeof o === "string" ? o : JSON.stringify(o));
  const d = sha(b);
  blobs.set(d, b);
  return d;
};
const snaps = new Map<string, Info>(); // "snapshotter/key" → info
const snap = (
  sn: string,
  key: string,
  parent: string,
  kind = Kind.ACTIVE,
  labels: Record<string, string> = {},
) =>
  snaps.set(`${sn}/${key}`, { name: key, parent, kind, labels, createdAt: undefined, updatedAt: undefined });

function image(layers: string[]): { manifest: string; chain: string } {
  const diffIds = layers.map((l) => sha(`layer ${l}`));
  const config = put({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: diffIds } });
  const manifest = put({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: 1 },
    layers: [],
  });
  return { manifest, chain: chainId(diffIds) };
}

let dir: string;
let server: Server;
let rootfs: ContainerdRootfs;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-rootfs-"));
  const socket = path.join(dir, "containerd.sock");
  server = new Server();
  server.addService(SnapshotsService, {
    stat(
      call: ServerUnaryCall<StatSnapshotRequest, StatSnapshotResponse>,
      cb: sendUnaryData<StatSnapshotResponse>,
    ) {
      const i = snaps.get(`${call.request.snapshotter}/${call.request.key}`);
      if (!i) return cb({ code: status.NOT_FOUND, details: `snapshot ${call.request.key} does not exist` });
      cb(null, { info: i });
    },
  });
  server.addService(ContentService, {
    read(call: ServerWritableStream<ReadContentRequest, ReadContentResponse>) {
      const b = blobs.get(call.request.digest);
      if (!b) return void call.emit("error", { code: status.NOT_FOUND, details: "content not found" });
      for (let off = 0; off < b.length; off += 1 << 20)
        call.write({ offset: off, data: b.subarray(off, off + (1 << 20)) });
      call.end();
    },
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (e) =>
      e ? reject(e) : resolve(),
    ),
  );
  rootfs = new ContainerdRootfs({ address: socket, snapshotters: ["overlayfs", "native"] });
});

afterAll(() => {
  rootfs?.close();
  server?.forceShutdown();
  rmSync(dir, { recursive: true, force: true });
});

const soon = () => Date.now() + 5000;

describe("ContainerdRootfs", () => {
  it("matches the container's snapshot parent against every manifest of a judged index", async () => {
    const amd = image(["a1", "a2"]);
    const arm = image(["b1"]);
    const index = put({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        { digest: amd.manifest, size: 1 },
        { digest: arm.manifest, size: 1 },
        { digest: sha("a platform never pulled"), size: 1 },
      ],
    });
    expect((await rootfs.chainIds(index, soon())).sort()).toEqual([amd.chain, arm.chain].sort());
    snap("overlayfs", "c-amd", amd.chain);
    snap("native", "c-arm", arm.chain); // found in the second snapshotter
    expect(await rootfs.bind("c-amd", index, soon())).toMatchObject({ kind: "match", parent: amd.chain });
    expect(await rootfs.bind("c-arm", index, soon())).toMatchObject({ kind: "match", snapshotter: "native" });
  });

  it("a different rootfs is a mismatch; so is the judged image plus one more layer", async () => {
    const judged = image(["s1"]);
    const other = image(["u1"]);
    snap("overlayfs", "c-other", other.chain);
    expect(await rootfs.bind("c-other", judged.manifest, soon())).toMatchObject({
      kind: "mismatch",
      parent: other.chain,
      expected: [judged.chain],
    });
    // Unpacked layer snapshots carry containerd's snapshot.ref label: never "one hop away".
    const plus = chainId([sha("layer s1"), sha("layer evil")]);
    snap("overlayfs", plus, judged.chain, Kind.COMMITTED, { "containerd.io/snapshot.ref": plus });
    snap("overlayfs", "c-plus", plus);
    expect((await rootfs.bind("c-plus", judged.manifest, soon())).kind).toBe("mismatch");
  });

  it("accepts an ID-remapped copy of the judged top layer (user-namespaced pods)", async () => {
    const judged = image(["r1"]);
    snap("overlayfs", "sha256:remapped", judged.chain, Kind.COMMITTED);
    snap("overlayfs", "c-userns", "sha256:remapped");
    expect(await rootfs.bind("c-userns", judged.manifest, soon())).toMatchObject({ kind: "match" });
  });

  it("takes a match from containerd's prepare event without a Stat; anything else is asked of containerd", async () => {
    const judged = image(["e1"]);
    const other = image(["e2"]);
    const told = new Map<string, string>(); // "snapshotter/key" → parent, as the events said
    const r = new ContainerdRootfs({
      address: path.join(dir, "containerd.sock"),
      snapshotters: ["overlayfs", "native"],
      preparedParent: (sn, key) => told.get(`${sn}/${key}`),
    });
    try {
      snap("overlayfs", "c-ev", judged.chain);
      told.set("overlayfs/c-ev", judged.chain);
      expect(await r.bind("c-ev", judged.manifest, soon())).toMatchObject({
        kind: "match",
        parent: judged.chain,
      });
      expect(r.counts).toEqual({ fromEvents: 1, statCalls: 0 });
      // An event that disagrees with the judged image never denies by itself: containerd's
      // Stat decides (here it says the judged content).
      snap("overlayfs", "c-stale", judged.chain);
      told.set("overlayfs/c-stale", other.chain);
      expect(await r.bind("c-stale", judged.manifest, soon())).toMatchObject({ kind: "match" });
      expect(r.counts).toEqual({ fromEvents: 1, statCalls: 1 });
      // ...and when Stat agrees it is other content, the mismatch stands (tag moved).
      snap("overlayfs", "c-moved", other.chain);
      told.set("overlayfs/c-moved", other.chain);
      expect(await r.bind("c-moved", judged.manifest, soon())).toMatchObject({
        kind: "mismatch",
        parent: other.chain,
      });
      // No event (not arrived yet): Stat, as before.
      snap("native", "c-late", judged.chain);
      expect(await r.bind("c-late", judged.manifest, soon())).toMatchObject({
        kind: "match",
        snapshotter: "native",
      });
      expect(r.counts.fromEvents).toBe(1);
    } finally {
      r.close();
    }
  });

  it("bindNow answers only a match it knows at once: event parent among chain IDs already read", async () => {
    const judged = image(["f1"]);
    const other = image(["f2"]);
    const told = new Map<string, string>();
    const r = new ContainerdRootfs({
      address: path.join(dir, "containerd.sock"),
      snapshotters: ["overlayfs", "native"],
      preparedParent: (sn, key) => told.get(`${sn}/${key}`),
    });
    try {
      told.set("native/c-now", judged.chain);
      // Chain IDs not read yet: nothing at once (bind() reads them from the content store).
      expect(r.bindNow("c-now", judged.manifest)).toBeUndefined();
      await r.chainIds(judged.manifest, soon());
      expect(r.bindNow("c-now", judged.manifest)).toEqual({
        kind: "match",
        snapshotter: "native",
        parent: judged.chain,
      });
      expect(r.counts).toEqual({ fromEvents: 1, statCalls: 0 });
      // A disagreeing event, no event, no container id: never a verdict at once.
      told.set("overlayfs/c-other", other.chain);
      expect(r.bindNow("c-other", judged.manifest)).toBeUndefined();
      expect(r.bindNow("c-none", judged.manifest)).toBeUndefined();
      expect(r.bindNow("", judged.manifest)).toBeUndefined();
      expect(r.counts).toEqual({ fromEvents: 1, statCalls: 0 });
    } finally {
      r.close();
    }
    // Without the events source there is nothing to answer at once.
    expect(rootfs.bindNow("c-now", judged.manifest)).toBeUndefined();
  });

  it("nothing to compare is 'unknown', with the reason", async () => {
    const judged = image(["n1"]);
    expect(await rootfs.bind("no-such-container", judged.manifest, soon())).toMatchObject({
      kind: "unknown",
      reason: expect.stringMatching(/no snapshot no-such-container in snapshotter\(s\) overlayfs, native/),
    });
    snap("overlayfs", "c-gone", judged.chain);
    expect(await rootfs.bind("c-gone", sha("content gone"), soon())).toMatchObject({
      kind: "unknown",
      reason: expect.stringMatching(/no manifest of sha256:[0-9a-f]+ is in containerd's content store/),
    });
  });

  it("bad content fails with a clear error: wrong digest, not JSON, malformed diff_ids, oversized", async () => {
    const fake = sha("claimed");
    blobs.set(fake, Buffer.from("{}"));
    await expect(rootfs.chainIds(fake, soon())).rejects.toThrow(/does not match its digest/);
    await expect(rootfs.chainIds(put("not json"), soon())).rejects.toThrow(/not a JSON object/);
    const cfg = put({ rootfs: { diff_ids: ["nope"] } });
    const m = put({ config: { digest: cfg } });
    await expect(rootfs.chainIds(m, soon())).rejects.toThrow(/malformed rootfs\.diff_ids/);
    const big = Buffer.alloc(5 * 1024 * 1024, 0x20);
    blobs.set(sha(big), big);
    await expect(rootfs.chainIds(sha(big), soon())).rejects.toThrow(/larger than 4194304 bytes/);
  });
});
