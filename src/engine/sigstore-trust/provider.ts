// The agent's trusted roots from TUF: per source (mirror × initial root) the last verified
// trusted_root.json in memory, backed by an on-disk cache, refreshed on its interval in the
// background. A failed refresh keeps the last good root (marked stale, with the error); only
// a source that never had a verified root makes keyless verification "could not complete".
import os from "node:os";
import path from "node:path";
import { abortable } from "../abortable.js";
import { EngineError } from "../errors.js";
import type { TrustedRootResolver, TrustedRootSnapshot, TrustSourceStatus, TufSource } from "./types.js";
import type { TufLimits, TufResult } from "./tuf-update.js";

export interface TufTrustedRootsOptions {
  /** Cache directory (one subdirectory per source), created root-only. */
  cacheDir: string;
  /** Never contact a mirror: only the on-disk cache (the pull verifier's fallback). */
  offline?: boolean;
  limits?: Partial<TufLimits>;
  now?: () => Date;
  /** After each refresh attempt (metrics, logs). */
  onRefresh?: (ev: { source: TufSource; ok: boolean; changed: boolean; error?: string }) => void;
}

interface Entry {
  src: TufSource;
  held?: TrustedRootSnapshot;
  lastAttemptAt?: number;
  lastError?: { message: string; at: string };
  failures: number;
  inflight?: Promise<TrustedRootSnapshot | undefined>;
  /** The on-disk cache has been read once (loaded or found empty/refused). */
  cacheRead: boolean;
}

const MAX_BACKOFF_MS = 15 * 60_000;
const MIN_BACKOFF_MS = 30_000;

type TufUpdate = typeof import("./tuf-update.js");
let tufUpdate: Promise<TufUpdate> | undefined;
const loadTufUpdate = () => {
  tufUpdate ??= import("./tuf-update.js");
  return tufUpdate;
};

export class TufTrustedRoots implements TrustedRootResolver {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => Date;
  private timer: NodeJS.Timeout | undefined;
  private readonly stopping = new AbortController();

  constructor(private readonly opts: TufTrustedRootsOptions) {
    this.now = opts.now ?? (() => new Date());
  }

  private entry(src: TufSource): Entry {
    let e = this.entries.get(src.id);
    if (!e) {
      e = { src, failures: 0, cacheRead: false };
      this.entries.set(src.id, e);
    } else if (src.refreshIntervalSeconds < e.src.refreshIntervalSeconds) {
      // Two policies naming one source: the shorter interval wins.
      e.src = src;
    }
    return e;
  }

  peek(src: TufSource): TrustedRootSnapshot | undefined {
    return this.entries.get(src.id)?.held;
  }

  async get(src: TufSource, signal?: AbortSignal): Promise<TrustedRootSnapshot> {
    const e = this.entry(src);
    if (e.held) {
      if (this.due(e)) void this.refresh(src);
      return e.held;
    }
    const got = await this.load(e, signal);
    if (got) return got;
    throw new EngineError(
      "TRUST_ROOT_UNAVAILABLE",
      `no verified Sigstore trusted root from ${src.mirror}${e.lastError ? `: ${e.lastError.message}` : ""}`,
    );
  }

  /** Registers the sources policies in force name, and loads each (cache, then mirror). */
  async track(sources: Iterable<TufSource>): Promise<void> {
    await Promise.all(
      [...sources].map(async (s) => {
        const e = this.entry(s);
        await this.load(e).catch(() => undefined);
        // A root from the disk cache is confirmed with the mirror right away.
        if (this.due(e)) await this.refresh(e.src);
      }),
    );
  }

  /** Forgets sources no policy names any more (they stop being refreshed and reported). */
  retain(sources: Iterable<TufSource>): void {
    const keep = new Set([...sources].map((s) => s.id));
    for (const id of this.entries.keys()) if (!keep.has(id)) this.entries.delete(id);
  }

  /** Refreshes one source now (single-flight). Resolves with the held root after it. */
  async refresh(src: TufSource): Promise<TrustedRootSnapshot | undefined> {
    const e = this.entry(src);
    return this.run(e, async () => {
      await this.readCache(e);
      if (!this.opts.offline) await this.fetch(e);
      return e.held;
    });
  }

  /** Refreshes every source whose interval (or backoff after a failure) has passed. */
  async refreshDue(): Promise<void> {
    await Promise.all([...this.entries.values()].filter((e) => this.due(e)).map((e) => this.refresh(e.src)));
  }

  /** Background refresh loop (not for offline use). */
  start(tickMs = 15_000): void {
    if (this.timer || this.opts.offline) return;
    this.timer = setInterval(() => void this.refreshDue(), tickMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stopping.abort(new EngineError("CANCELLED", "the trusted root refresher stopped"));
  }

  status(): TrustSourceStatus[] {
    const now = this.now().getTime();
    return [...this.entries.values()].map((e) => {
      const h = e.held;
      const expired = h !== undefined && Date.parse(h.expires) <= now;
      const failing = e.lastError !== undefined && e.failures > 0;
      const state = !h ? "unavailable" : expired || failing ? "stale" : "fresh";
      const next = this.nextAt(e);
      return {
        id: e.src.id,
        mirror: e.src.mirror,
        initialRoot: e.src.rootDigest.slice(0, 12),
        state,
        refreshIntervalSeconds: e.src.refreshIntervalSeconds,
        consecutiveFailures: e.failures,
        ...(h
          ? {
              origin: h.origin,
              fetchedAt: h.fetchedAt,
              expires: h.expires,
              rootVersion: h.rootVersion,
              trustedRoot: h.digest.slice(0, 12),
            }
          : {}),
        ...(e.lastAttemptAt !== undefined ? { lastAttemptAt: new Date(e.lastAttemptAt).toISOString() } : {}),
        ...(next !== undefined && !this.opts.offline ? { nextRefreshAt: new Date(next).toISOString() } : {}),
        ...(e.lastError ? { lastError: e.lastError } : {}),
      } satisfies TrustSourceStatus;
    });
  }

  // ---- internals ----------------------------------------------------------------------

  private dir(src: TufSource): string {
    return path.join(this.opts.cacheDir, src.id);
  }

  private nextAt(e: Entry): number | undefined {
    if (e.lastAttemptAt === undefined) return undefined;
    const interval = e.src.refreshIntervalSeconds * 1000;
    if (e.failures === 0) return e.lastAttemptAt + interval;
    const backoff = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (e.failures - 1));
    return e.lastAttemptAt + Math.min(interval, backoff);
  }

  private due(e: Entry): boolean {
    return !this.opts.offline && !e.inflight && this.dueNow(e);
  }

  private dueNow(e: Entry): boolean {
    const next = this.nextAt(e);
    return next === undefined || this.now().getTime() >= next;
  }

  private run(e: Entry, work: () => Promise<TrustedRootSnapshot | undefined>) {
    if (e.inflight) return e.inflight;
    const p = work().finally(() => {
      if (e.inflight === p) e.inflight = undefined;
    });
    e.inflight = p;
    return p;
  }

  /** First use: the on-disk cache, then (online, when it had nothing) the mirror. */
  private async load(e: Entry, signal?: AbortSignal): Promise<TrustedRootSnapshot | undefined> {
    if (e.held) return e.held;
    const p = this.run(e, async () => {
      await this.readCache(e);
      // Without a root every verification asks again: the backoff still paces the mirror.
      if (!e.held && !this.opts.offline && this.dueNow(e)) await this.fetch(e);
      return e.held;
    });
    return abortable(p, signal);
  }

  private async readCache(e: Entry): Promise<void> {
    if (e.cacheRead) return;
    e.cacheRead = true;
    try {
      const r = await (await loadTufUpdate()).loadFromCache(e.src, this.dir(e.src));
      if (r && !e.held) e.held = snapshot(r, "cache");
      if (!r && this.opts.offline)
        this.fail(e, `no cached trusted root from ${e.src.mirror} in ${this.opts.cacheDir}`);
    } catch (err) {
      this.fail(e, (err as Error).message);
    }
  }

  private async fetch(e: Entry): Promise<void> {
    e.lastAttemptAt = this.now().getTime();
    const { refreshFromMirror, DEFAULT_LIMITS } = await loadTufUpdate();
    try {
      const r = await refreshFromMirror(
        e.src,
        this.dir(e.src),
        { ...DEFAULT_LIMITS, ...this.opts.limits },
        this.stopping.signal,
      );
      const changed = e.held?.digest !== r.digest;
      e.held = snapshot(r, "tuf");
      e.failures = 0;
      e.lastError = undefined;
      this.opts.onRefresh?.({ source: e.src, ok: true, changed });
    } catch (err) {
      this.fail(e, (err as Error).message);
      this.opts.onRefresh?.({ source: e.src, ok: false, changed: false, error: (err as Error).message });
    }
  }

  private fail(e: Entry, message: string): void {
    e.failures++;
    e.lastError = { message, at: this.now().toISOString() };
  }
}

/** Where a process without agent configuration (`tollgate verify --policy`) caches TUF data. */
export function userTufCache(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(env.HOME || os.tmpdir(), ".cache");
  return path.join(base, "tollgate", "sigstore-tuf");
}

function snapshot(r: TufResult, origin: "tuf" | "cache"): TrustedRootSnapshot {
  return {
    json: r.json,
    digest: r.digest,
    fetchedAt: r.fetchedAt,
    expires: r.expires,
    rootVersion: r.rootVersion,
    origin,
  };
}
