// containerd's own record of the snapshots it prepares, from its event stream: CRI prepares
// a container's rootfs snapshot (key = container id, parent = the image's chain ID) before
// it asks NRI, and containerd publishes /snapshot/prepare when that Prepare returns. Knowing
// the parent from the event spares the create-time gate a snapshots.Stat round trip to
// containerd per allowed create (rootfs.ts); without the event (not arrived yet, stream not
// live) the gate asks containerd as before. The event carries what Stat would answer, from
// the same component, so it binds the container to the same content.
//
// api/events/snapshot.proto: SnapshotPrepare { key = 1; parent = 2; snapshotter = 5 },
// SnapshotRemove { key = 1; snapshotter = 5 }.
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { LRUCache } from "lru-cache";
import type { Envelope } from "../gen/containerd/types/event.js";

export const SNAPSHOT_TOPICS = ["/snapshot/prepare", "/snapshot/remove"] as const;
const TYPE_PREPARE = "containerd.events.SnapshotPrepare";
const TYPE_REMOVE = "containerd.events.SnapshotRemove";
/** Longest key / parent / snapshotter name we keep (container ids and chain IDs are far shorter). */
const MAX_FIELD = 512;

export interface SnapshotEvent {
  kind: "prepare" | "remove";
  key: string;
  parent: string;
  snapshotter: string;
}

/** One /snapshot/prepare or /snapshot/remove envelope; undefined when it is not one or is malformed. */
export function decodeSnapshotEvent(env: Envelope): SnapshotEvent | undefined {
  const ev = env.event;
  if (!ev) return undefined;
  const type = ev.typeUrl.startsWith("type.googleapis.com/") ? ev.typeUrl.slice(20) : ev.typeUrl;
  let kind: SnapshotEvent["kind"];
  if (type === TYPE_PREPARE && env.topic === "/snapshot/prepare") kind = "prepare";
  else if (type === TYPE_REMOVE && env.topic === "/snapshot/remove") kind = "remove";
  else return undefined;
  const out: SnapshotEvent = { kind, key: "", parent: "", snapshotter: "" };
  try {
    const r = new BinaryReader(ev.value);
    while (r.pos < r.len) {
      const tag = r.uint32();
      const field = tag >>> 3;
      if (field === 1 && (tag & 7) === 2) out.key = r.string();
      else if (field === 2 && (tag & 7) === 2 && kind === "prepare") out.parent = r.string();
      else if (field === 5 && (tag & 7) === 2) out.snapshotter = r.string();
      else r.skip(tag & 7);
    }
  } catch {
    return undefined;
  }
  if (!out.key || !out.snapshotter) return undefined;
  if (out.key.length > MAX_FIELD || out.parent.length > MAX_FIELD || out.snapshotter.length > MAX_FIELD)
    return undefined;
  return out;
}

/** snapshotter × key → parent, as the events told; bounded, and cleared whenever events may have been missed. */
export class PreparedSnapshots {
  private readonly parents: LRUCache<string, string>;

  constructor(maxEntries = 4096, ttlMs = 10 * 60_000) {
    this.parents = new LRUCache({ max: maxEntries, ttl: ttlMs });
  }

  apply(e: SnapshotEvent): void {
    const k = `${e.snapshotter}\0${e.key}`;
    if (e.kind === "prepare") this.parents.set(k, e.parent);
    else this.parents.delete(k);
  }

  /** The parent of `key` in `snapshotter` as prepared, or undefined when no event told us. */
  parent(snapshotter: string, key: string): string | undefined {
    return this.parents.get(`${snapshotter}\0${key}`);
  }

  clear(): void {
    this.parents.clear();
  }
}
