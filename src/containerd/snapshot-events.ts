// containerd's own record of the snapshots it prepares, from its event stream: CRI prepares
// a container's rootfs snapshot (key = container id, parent = the image's chain ID) before
// it asks NRI, and containerd publishes /snapshot/prepare when that Prepare returns. Knowing
// the parent from the event spares the create-time gate a snapshots.Stat round trip to
// containerd per allowed create (rootfs.ts); without the event (not arrived yet, stream not
// live) the gate asks containerd as before. The event carries what Stat would answer, from
// the same component, so it binds the container to the same content.
//
// Only /snapshot/prepare is followed. Removals are not: the key is the container id, which
// containerd generates at random and never reuses, so a removed container's entry can only
// age out of the bounded map, never answer for another container; and the gate takes only a
// match from an entry (anything else is asked of containerd). Not following removals spares
// the agent one event, and containerd one delivery, per container removed.
//
// api/events/snapshot.proto: SnapshotPrepare { key = 1; parent = 2; snapshotter = 5 }.
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { LRUCache } from "lru-cache";
import type { Envelope } from "../gen/containerd/types/event.js";

export const SNAPSHOT_PREPARE_TOPIC = "/snapshot/prepare";
const TYPE_PREPARE = "containerd.events.SnapshotPrepare";
/** Longest key / parent / snapshotter name we keep (container ids and chain IDs are far shorter). */
const MAX_FIELD = 512;

export interface SnapshotEvent {
  key: string;
  parent: string;
  snapshotter: string;
}

/** One /snapshot/prepare envelope; undefined when it is not one or is malformed. */
export function decodeSnapshotEvent(env: Envelope): SnapshotEvent | undefined {
  const ev = env.event;
  if (!ev) return undefined;
  const type = ev.typeUrl.startsWith("type.googleapis.com/") ? ev.typeUrl.slice(20) : ev.typeUrl;
  if (type !== TYPE_PREPARE || env.topic !== SNAPSHOT_PREPARE_TOPIC) return undefined;
  const out: SnapshotEvent = { key: "", parent: "", snapshotter: "" };
  try {
    const r = new BinaryReader(ev.value);
    while (r.pos < r.len) {
      const tag = r.uint32();
      const field = tag >>> 3;
      if (field === 1 && (tag & 7) === 2) out.key = r.string();
      else if (field === 2 && (tag & 7) === 2) out.parent = r.string();
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

/** key → snapshotter → parent, as the events told; bounded, and cleared whenever events may have been missed. */
export class PreparedSnapshots {
  private readonly parents: LRUCache<string, Map<string, string>>;

  constructor(maxEntries = 4096, ttlMs = 10 * 60_000) {
    // ttlResolution 0: no timer per access (see image-cache.ts).
    this.parents = new LRUCache({ max: maxEntries, ttl: ttlMs, ttlResolution: 0 });
  }

  /** A later prepare of the same key (in the same snapshotter) replaces the parent. */
  apply(e: SnapshotEvent): void {
    const bySnapshotter = this.parents.get(e.key);
    if (bySnapshotter) bySnapshotter.set(e.snapshotter, e.parent);
    else this.parents.set(e.key, new Map([[e.snapshotter, e.parent]]));
  }

  /** The parent of `key` in `snapshotter` as prepared, or undefined when no event told us. */
  parent(snapshotter: string, key: string): string | undefined {
    return this.parents.get(key)?.get(snapshotter);
  }

  /** Did a prepare of `key` (in any snapshotter) arrive since the last clear? */
  seen(key: string): boolean {
    return this.parents.has(key);
  }

  clear(): void {
    this.parents.clear();
  }
}
