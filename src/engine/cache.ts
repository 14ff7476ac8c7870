// Verdict cache (design.md "Decisions"): keyed by image digest × policy revision, never by
// tag, so a policy change makes old verdicts unreachable by construction. Positive, negative
// and failed verdicts expire separately; concurrent requests for one key share a single
// verification (single flight). Bounded by entry count and approximate bytes (lru-cache).
import { LRUCache } from "lru-cache";
import type { Outcome, Verdict } from "./types.js";

/**
 * What the cache can hold: anything keyed by subject digest × policy revision with an
 * outcome that picks its TTL. The engine stores signature results (verify.ts
 * SignatureResult) — never a decision that depends on the image name.
 */
export interface Cacheable {
  outcome: Outcome;
  subject: { digest: string };
  policy: { revision: string };
  cached: boolean;
  /** ISO time after which the entry must not be served (time-dependent conditions). */
  expiresAt?: string;
}

export interface VerdictCacheOptions {
  /** Most verdicts kept (default 10 000). */
  maxEntries?: number;
  /** Approximate bytes of verdicts kept (default 32 MiB; a verdict's size ≈ 2 × its JSON length). */
  maxBytes?: number;
  /** TTL of verdicts whose verification could not complete (default 5 s; 0 = never cached). */
  failedTTLSeconds?: number;
  /** Clock in milliseconds (tests inject one; default Date.now). */
  now?: () => number;
}

export interface TtlSpec {
  positiveTTLSeconds: number;
  negativeTTLSeconds: number;
}

export interface VerdictCacheStats {
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  /** Requests that joined a verification already in flight. */
  joined: number;
  inflight: number;
  stored: number;
  evicted: number;
}

export const CACHE_DEFAULTS = { maxEntries: 10_000, maxBytes: 32 << 20, failedTTLSeconds: 5 } as const;

export function cacheKey(digest: string, revision: string): string {
  return `${digest}|${revision}`;
}

/** Which TTL a verdict gets; 0 means "do not cache". Exempt/ungoverned verdicts are not cached (cheap and reference-dependent). */
export function ttlSecondsFor(v: Pick<Cacheable, "outcome">, ttl: TtlSpec, failedTTLSeconds: number): number {
  switch (v.outcome) {
    case "verified":
      return ttl.positiveTTLSeconds;
    case "rejected":
      return ttl.negativeTTLSeconds;
    case "failed":
      return failedTTLSeconds;
    default:
      return 0;
  }
}

export class VerdictCache<V extends Cacheable = Verdict> {
  private readonly lru: LRUCache<string, V>;
  private readonly inflight = new Map<string, Promise<V>>();
  private readonly failedTTLSeconds: number;
  private readonly counters = { hits: 0, misses: 0, joined: 0, stored: 0, evicted: 0 };
  private readonly now: () => number;

  constructor(opts: VerdictCacheOptions = {}) {
    const now = opts.now ?? Date.now;
    this.now = now;
    this.failedTTLSeconds = opts.failedTTLSeconds ?? CACHE_DEFAULTS.failedTTLSeconds;
    this.lru = new LRUCache<string, V>({
      max: opts.maxEntries ?? CACHE_DEFAULTS.maxEntries,
      maxSize: opts.maxBytes ?? CACHE_DEFAULTS.maxBytes,
      sizeCalculation: (v) => Math.max(1, JSON.stringify(v).length * 2),
      // An expired verdict is never served; the clock is read on every access (no timers).
      perf: { now },
      ttlResolution: 0,
      ttlAutopurge: false,
      allowStale: false,
      dispose: (_v, _k, reason) => {
        if (reason === "evict") this.counters.evicted++;
      },
    });
  }

  /**
   * A cached verdict (marked cached: true) or undefined. Every hit returns the same frozen
   * object until the entry is replaced, so callers may remember work keyed on it (engine
   * judging) and none can change what the next caller is served.
   */
  get(digest: string, revision: string): V | undefined {
    const v = this.lru.get(cacheKey(digest, revision));
    if (!v) {
      this.counters.misses++;
      return undefined;
    }
    this.counters.hits++;
    return v;
  }

  /** Looks without counting a hit/miss or touching recency. */
  peek(digest: string, revision: string): V | undefined {
    return this.lru.peek(cacheKey(digest, revision));
  }

  /** Stores per the verdict's outcome; returns the TTL used (0 = not stored). */
  set(v: V, ttl: TtlSpec): number {
    let seconds = ttlSecondsFor(v, ttl, this.failedTTLSeconds);
    // A time-dependent condition's expiry caps the TTL (attest/expiry.ts).
    if (v.expiresAt !== undefined) seconds = Math.min(seconds, (Date.parse(v.expiresAt) - this.now()) / 1000);
    if (!(seconds > 0)) return 0;
    this.lru.set(cacheKey(v.subject.digest, v.policy.revision), Object.freeze({ ...v, cached: true }), {
      ttl: seconds * 1000,
    });
    this.counters.stored++;
    return seconds;
  }

  /**
   * Single flight: the first caller for `key` starts `work`; everyone else gets the same
   * promise. `work` must not depend on any one caller's AbortSignal.
   */
  shared(key: string, work: () => Promise<V>): { promise: Promise<V>; joined: boolean } {
    const existing = this.inflight.get(key);
    if (existing) {
      this.counters.joined++;
      return { promise: existing, joined: true };
    }
    const promise = work().finally(() => {
      this.inflight.delete(key);
    });
    this.inflight.set(key, promise);
    return { promise, joined: false };
  }

  clear(): void {
    this.lru.clear();
  }

  stats(): VerdictCacheStats {
    return {
      entries: this.lru.size,
      bytes: this.lru.calculatedSize,
      inflight: this.inflight.size,
      ...this.counters,
    };
  }
}
