// Binds a create-time judgement to the content containerd will actually start.
//
// The gate judges the digest the image *name* points at when it looks. containerd creates
// from the image kubelet resolved earlier (normally by image id). If the tag moved in
// between, the two differ: the tag-move race. Two defences, in order:
//  1. containerd's own record: the rootfs snapshot CRI prepared for this container before
//     asking NRI (key = container id, parent = chain ID of the image's layers). Its parent
//     must be one of the judged image's chain IDs, else the create is denied.
//  2. Where containerd records nothing we can read (another snapshotter, content gone): if
//     the name pointed at more than one digest inside the window, every one of them must
//     pass, else the create is denied — we cannot tell which one runs.
// Both denials hold under every failure policy: not knowing what runs is not a
// verification failure. Audit mode and break-glass still allow (logged).
import { errorMessage } from "../base/errors.js";
import type { Binding } from "../containerd/rootfs.js";
import { LRUCache } from "lru-cache";

export type { Binding };

export interface RootfsBinder {
  bind(containerId: string, digest: string, deadline: number): Promise<Binding>;
  /** A match known at once (from what containerd already told), else undefined: call bind(). */
  bindNow?(containerId: string, digest: string): Binding | undefined;
}

/** name → the digests it was seen at (pulls and create-time resolutions), newest last. */
export class TagHistory {
  private readonly names: LRUCache<string, Array<{ digest: string; at: number }>>;
  constructor(
    readonly windowMs: number,
    /** Applied to every name, so spellings of one name share a history. */
    private readonly normalize: (name: string) => string = (n) => n,
    private readonly now: () => number = Date.now,
    maxNames = 4096,
  ) {
    this.names = new LRUCache({ max: maxNames });
  }

  record(name: string, digest: string): void {
    if (!name || !digest || this.windowMs <= 0) return;
    name = this.normalize(name);
    const t = this.now();
    const known = this.names.get(name);
    const last = known?.[known.length - 1];
    // The common case, every create of a cached image: the newest digest again. Refresh its
    // time in place; older entries age out of within() by their own times.
    if (last?.digest === digest) {
      last.at = t;
      return;
    }
    const seen = (known ?? []).filter((e) => e.digest !== digest && t - e.at <= this.windowMs);
    seen.push({ digest, at: t });
    // A name that flips between more digests than this inside the window is denied anyway.
    this.names.set(name, seen.slice(-8));
  }

  /** Distinct digests `name` pointed at inside the window. */
  within(name: string): string[] {
    const t = this.now();
    return (this.names.get(this.normalize(name)) ?? [])
      .filter((e) => t - e.at <= this.windowMs)
      .map((e) => e.digest);
  }
}

export type BindingOutcome = { ok: true; note?: string } | { ok: false; reason: string };

/**
 * Checks an allowed create. `passes(digest)` answers whether another digest the name pointed
 * at would be allowed for this request (same policy / exemption); it is called only on the
 * fallback path.
 */
export async function checkBinding(o: {
  binder: RootfsBinder;
  history?: TagHistory;
  containerId: string;
  name: string;
  digest: string;
  deadline: number;
  passes: (digest: string) => Promise<{ allowed: boolean; reason: string }>;
}): Promise<BindingOutcome> {
  let b: Binding;
  try {
    b = await o.binder.bind(o.containerId, o.digest, o.deadline);
  } catch (e) {
    b = { kind: "unknown", reason: errorMessage(e) };
  }
  if (b.kind === "match") return { ok: true };
  if (b.kind === "mismatch")
    return {
      ok: false,
      reason:
        `containerd is creating this container from other content than the image judged: its root ` +
        `filesystem (snapshot parent ${b.parent}) is not ${o.digest}, which "${o.name}" points at now ` +
        `(the tag moved between kubelet's lookup and this create; a retry judges the new image)`,
    };
  const others = (o.history?.within(o.name) ?? []).filter((d) => d !== o.digest);
  if (others.length === 0) return { ok: true, note: `rootfs binding unavailable: ${b.reason}` };
  for (const d of others) {
    const r = await o.passes(d);
    if (!r.allowed)
      return {
        ok: false,
        reason:
          `"${o.name}" pointed at ${others.length + 1} digests within the last ` +
          `${Math.round((o.history?.windowMs ?? 0) / 1000)} s and containerd records nothing that tells ` +
          `which one this container runs (${b.reason}); ${d} is not allowed: ${r.reason}`,
      };
  }
  return { ok: true, note: `rootfs binding unavailable (${b.reason}); every digest of the name passes` };
}
