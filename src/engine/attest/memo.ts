// Per-request judgements are cheap but not free (≈90 µs with a namespace condition, ≈700 µs
// when a `now` condition needs its expiry searched; measured on Node 24), and creates repeat
// the same (image name, namespace) for one digest. So a judgement is remembered per cached
// evidence × name × namespace for as long as it provably holds:
//   - an allow until its expiresAt (a `now` condition turning false), else while no `now`
//     condition exists, else for the search horizon it was computed over;
//   - a denial only when no condition reads `now` (a time-dependent denial may lift).
// Keyed by the evidence object the verdict cache holds: when the cache drops or replaces an
// entry, its judgements are unreachable. One LRU bounds them all.
import { LRUCache } from "lru-cache";
import type { Judgement } from "./index.js";
import type { RequestVars } from "./request.js";
import type { AttestationEvidence } from "./types.js";

const MAX_JUDGEMENTS = 4096;

interface Memo {
  evidence: WeakRef<AttestationEvidence>;
  judgement: Judgement;
  from: number;
  until: number;
}

const ids = new WeakMap<AttestationEvidence, number>();
let nextId = 0;
const memo = new LRUCache<string, Memo>({ max: MAX_JUDGEMENTS });

export function memoised(
  evidence: AttestationEvidence,
  request: RequestVars,
  now: Date,
  o: { usesNow: boolean; horizonMs: number },
  judge: () => Judgement,
): Judgement {
  let id = ids.get(evidence);
  if (id === undefined) {
    id = nextId++;
    ids.set(evidence, id);
  }
  const key = `${id}\u0000${request.image.reference}\u0000${request.request.namespace}`;
  const t = now.getTime();
  const hit = memo.get(key);
  if (hit && hit.evidence.deref() === evidence && t >= hit.from && t < hit.until) return hit.judgement;
  const judgement = judge();
  const until =
    judgement.state === "passed"
      ? (judgement.expiresAt?.getTime() ?? (o.usesNow ? t + o.horizonMs : Number.POSITIVE_INFINITY))
      : o.usesNow
        ? t
        : Number.POSITIVE_INFINITY;
  if (until > t) memo.set(key, { evidence: new WeakRef(evidence), judgement, from: t, until });
  return judgement;
}
