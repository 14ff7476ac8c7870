// What containerd itself records for a container being created, compared with the image the
// gate judged. This is what closes the tag-move race (docs/security.md).
//
// containerd 2.1 CRI (internal/cri/server/container_create.go) builds the container's options
// in this order: WithNewSnapshot(containerID, image) — Prepare of an active snapshot whose
// key is the container id and whose parent is the chain ID of the image's rootfs diff_ids —
// then the spec, then NRI's WithContainerAdjustment, which is where our CreateContainer runs.
// So when we are asked, the rootfs containerd will start already exists, and its parent names
// the content exactly. `image` there is the one CRI resolved from kubelet's image reference
// (normally the image id), not the name we look up, which is why the two can differ.
//
// The judged image (a top-level digest: manifest or index) is turned into the set of chain
// IDs of every manifest it covers (an index signature covers all of its children), read
// from containerd's content store. The container is bound to the judgement when the
// snapshot's parent is one of them — or, for user-namespaced pods on a snapshotter without
// idmap support, a committed ID-remapped copy whose own parent is one of them
// (client/snapshotter_opts_unix.go resolveSnapshotOptions).
import { isSha256Digest } from "../base/digest.js";
import { createHash } from "node:crypto";
import { type ClientReadableStream, credentials, status as grpcStatus, Metadata } from "@grpc/grpc-js";
import { LRUCache } from "lru-cache";
import { ContentClient, type ReadContentResponse } from "../gen/containerd/content.js";
import { type Info, Kind, SnapshotsClient } from "../gen/containerd/snapshots.js";

/** Largest index / manifest / config blob we read (containerd's own manifest limit is 4 MiB). */
const MAX_BLOB = 4 * 1024 * 1024;
/** Most child manifests of one index we follow (nested indexes count too). */
const MAX_MANIFESTS = 64;
/** Set by containerd's unpacker on every layer snapshot (core/unpack/unpacker.go). */
const SNAPSHOT_REF_LABEL = "containerd.io/snapshot.ref";

export type Binding =
  | { kind: "match"; snapshotter: string; parent: string }
  | { kind: "mismatch"; snapshotter: string; parent: string; expected: string[] }
  /** Nothing containerd records identifies the content (no snapshot under any snapshotter we know). */
  | { kind: "unknown"; reason: string };

export interface RootfsOptions {
  /** containerd socket: a path or a unix:// URL. */
  address: string;
  namespace?: string;
  /** Snapshotters to look in, in order (CRI's default is overlayfs; runtime handlers may name others). */
  snapshotters?: string[];
  /**
   * A snapshot's parent as containerd's /snapshot/prepare event told it (image-cache.ts),
   * undefined when no such event arrived: then Stat asks containerd.
   */
  preparedParent?: (snapshotter: string, key: string) => string | undefined;
}

export class RootfsError extends Error {}

/** Reads containerd's snapshot of a container and the chain IDs of an image. */
export class ContainerdRootfs {
  private readonly snapshots: SnapshotsClient;
  private readonly content: ContentClient;
  private readonly namespace: string;
  readonly snapshotters: string[];
  // Content is immutable: a digest's chain IDs never change.
  private readonly chains = new LRUCache<string, string[]>({ max: 1024 });
  private readonly preparedParent: RootfsOptions["preparedParent"];
  /** How container snapshots were found: from containerd's events, or by a Stat call. */
  readonly counts = { fromEvents: 0, statCalls: 0 };

  constructor(opts: RootfsOptions) {
    const target = opts.address.startsWith("unix:") ? opts.address : `unix://${opts.address}`;
    const o = { "grpc.max_receive_message_length": MAX_BLOB + 64 * 1024, "grpc.enable_retries": 0 };
    this.snapshots = new SnapshotsClient(target, credentials.createInsecure(), o);
    this.content = new ContentClient(target, credentials.createInsecure(), o);
    this.namespace = opts.namespace ?? "k8s.io";
    this.snapshotters = opts.snapshotters?.length ? opts.snapshotters : ["overlayfs"];
    this.preparedParent = opts.preparedParent;
  }

  /**
   * A match at once, when containerd's /snapshot/prepare event for the container arrived and
   * the image's chain IDs are known; undefined otherwise (then bind() decides, asking
   * containerd for anything but a match, as it always does).
   */
  bindNow(containerId: string, digest: string): Binding | undefined {
    const prepared = this.preparedParent;
    if (!prepared || !containerId) return undefined;
    const expected = this.chains.get(digest);
    if (!expected) return undefined;
    for (const snapshotter of this.snapshotters) {
      const parent = prepared(snapshotter, containerId);
      if (parent === undefined) continue;
      if (!expected.includes(parent)) return undefined;
      this.counts.fromEvents++;
      return { kind: "match", snapshotter, parent };
    }
    return undefined;
  }

  /** Does the snapshot containerd prepared for `containerId` hold the image `digest`? */
  async bind(containerId: string, digest: string, deadline: number): Promise<Binding> {
    if (!containerId) return { kind: "unknown", reason: "the request carries no container id" };
    // containerd's /snapshot/prepare event, when it arrived: only a match is taken from it;
    // anything else is confirmed by asking containerd.
    const prepared = this.preparedParent;
    for (const sn of prepared ? this.snapshotters : []) {
      const parent = prepared?.(sn, containerId);
      if (parent === undefined) continue;
      const info: Info = { name: containerId, parent, kind: Kind.ACTIVE, labels: {} };
      const b = await this.compare({ snapshotter: sn, info }, digest, deadline);
      if (b.kind === "match") {
        this.counts.fromEvents++;
        return b;
      }
      break;
    }
    let found: { snapshotter: string; info: Info } | undefined;
    for (const sn of this.snapshotters) {
      this.counts.statCalls++;
      const info = await this.stat(sn, containerId, deadline);
      if (info) {
        found = { snapshotter: sn, info };
        break;
      }
    }
    if (!found)
      return {
        kind: "unknown",
        reason: `no snapshot ${containerId} in snapshotter(s) ${this.snapshotters.join(", ")}`,
      };
    return this.compare(found, digest, deadline);
  }

  /** Is the snapshot's parent (or its remapped copy's parent) one of `digest`'s chain IDs? */
  private async compare(
    found: { snapshotter: string; info: Info },
    digest: string,
    deadline: number,
  ): Promise<Binding> {
    const expected = await this.chainIds(digest, deadline);
    if (expected.length === 0)
      return { kind: "unknown", reason: `no manifest of ${digest} is in containerd's content store` };
    const { snapshotter, info } = found;
    const parent = info.parent;
    if (expected.includes(parent)) return { kind: "match", snapshotter, parent };
    // A user-namespaced container on a snapshotter without idmap mounts: its parent is a
    // committed, ID-remapped copy of the image's top layer. Unpacked layers carry the
    // snapshot.ref label and remapped copies do not — without that test an unsigned image
    // made of the judged image plus one more layer would pass as "one hop away".
    if (parent) {
      const p = await this.stat(snapshotter, parent, deadline);
      if (
        p &&
        p.kind === Kind.COMMITTED &&
        expected.includes(p.parent) &&
        p.labels[SNAPSHOT_REF_LABEL] === undefined
      )
        return { kind: "match", snapshotter, parent: p.parent };
    }
    return { kind: "mismatch", snapshotter, parent, expected };
  }

  /** Chain IDs of every image manifest `digest` covers (itself, or an index's children). */
  async chainIds(digest: string, deadline: number): Promise<string[]> {
    const hit = this.chains.get(digest);
    if (hit) return hit;
    const out = new Set<string>();
    let budget = MAX_MANIFESTS;
    const walk = async (d: string, depth: number): Promise<void> => {
      if (budget-- <= 0 || depth > 2) return;
      const doc = await this.readJson(d, deadline);
      if (doc === undefined) return; // a platform never pulled to this node
      if (Array.isArray(doc.manifests)) {
        for (const m of doc.manifests as Array<{ digest?: unknown }>)
          if (typeof m?.digest === "string" && isSha256Digest(m.digest)) await walk(m.digest, depth + 1);
        return;
      }
      const cfg = (doc.config as { digest?: unknown } | undefined)?.digest;
      if (typeof cfg !== "string" || !isSha256Digest(cfg)) return; // not an image manifest
      const config = await this.readJson(cfg, deadline);
      const diffIds = (config?.rootfs as { diff_ids?: unknown } | undefined)?.diff_ids;
      if (!Array.isArray(diffIds) || diffIds.length === 0) return;
      if (!diffIds.every((x) => typeof x === "string" && isSha256Digest(x)))
        throw new RootfsError(`config ${cfg} has malformed rootfs.diff_ids`);
      out.add(chainId(diffIds as string[]));
    };
    await walk(digest, 0);
    const ids = [...out];
    if (ids.length > 0) this.chains.set(digest, ids);
    return ids;
  }

  private md(): Metadata {
    const md = new Metadata();
    md.set("containerd-namespace", this.namespace);
    return md;
  }

  private stat(snapshotter: string, key: string, deadline: number): Promise<Info | undefined> {
    return new Promise((resolve, reject) => {
      this.snapshots.stat({ snapshotter, key }, this.md(), { deadline: new Date(deadline) }, (err, res) => {
        if (!err) return resolve(res.info);
        // NOT_FOUND: no such snapshot; an unknown snapshotter answers NOT_FOUND or INVALID_ARGUMENT.
        if (err.code === grpcStatus.NOT_FOUND || err.code === grpcStatus.INVALID_ARGUMENT)
          return resolve(undefined);
        reject(
          new RootfsError(`containerd snapshots.Stat(${snapshotter}, ${key}): ${err.details || err.message}`),
        );
      });
    });
  }

  /** A blob as JSON, verified against its digest; undefined when the store does not have it. */
  private async readJson(digest: string, deadline: number): Promise<Record<string, unknown> | undefined> {
    const buf = await this.read(digest, deadline);
    if (buf === undefined) return undefined;
    if (`sha256:${createHash("sha256").update(buf).digest("hex")}` !== digest)
      throw new RootfsError(`content ${digest} does not match its digest`);
    try {
      const v = JSON.parse(buf.toString("utf8")) as unknown;
      if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // fall through
    }
    throw new RootfsError(`content ${digest} is not a JSON object`);
  }

  private read(digest: string, deadline: number): Promise<Buffer | undefined> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const stream: ClientReadableStream<ReadContentResponse> = this.content.read(
        { digest, offset: 0, size: 0 },
        this.md(),
        { deadline: new Date(deadline) },
      );
      stream.on("data", (r: ReadContentResponse) => {
        size += r.data.length;
        if (size > MAX_BLOB) {
          done = true;
          stream.cancel();
          return reject(new RootfsError(`content ${digest} is larger than ${MAX_BLOB} bytes`));
        }
        chunks.push(Buffer.from(r.data));
      });
      stream.on("error", (err: Error & { code?: number; details?: string }) => {
        if (done) return;
        done = true;
        if (err.code === grpcStatus.NOT_FOUND) return resolve(undefined);
        reject(new RootfsError(`containerd content.Read(${digest}): ${err.details || err.message}`));
      });
      stream.on("end", () => {
        if (done) return;
        done = true;
        resolve(Buffer.concat(chunks));
      });
    });
  }

  close(): void {
    this.snapshots.close();
    this.content.close();
  }
}

/** The OCI chain ID of a layer stack (image-spec config.md "Layer ChainID"). */
export function chainId(diffIds: string[]): string {
  let chain = diffIds[0]!;
  for (const d of diffIds.slice(1))
    chain = `sha256:${createHash("sha256").update(`${chain} ${d}`).digest("hex")}`;
  return chain;
}
