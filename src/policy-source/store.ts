// State shared by both policy sources: compiled policies with last-good semantics, the
// namespaces' metadata, rejections, and change notification. Sources feed it documents;
// it compiles them and decides what stays in force.

import { errorMessage } from "../base/errors.js";
import { type KeyVaultRef, keyVaultRefKey } from "../engine/policy/model.js";
import type { CompiledPolicyLike, PolicyCompiler, TrustMaterialRef, TrustMaterialResolver } from "./model.js";
import { refKey } from "./model.js";
import {
  DEFAULT_BREAK_GLASS_ANNOTATION,
  DEFAULT_POLICY_ANNOTATION,
  type NamespaceMeta,
  selectPolicy,
} from "./select.js";
import { materialKey, SNAPSHOT_FORMAT, type SnapshotBody } from "./snapshot.js";
import type {
  PolicyOutcome,
  PolicyStatusEntry,
  RejectedUpdate,
  Selection,
  SelectionConfig,
  SourceLogger,
  SourceStatus,
  SyncState,
} from "./types.js";

const MAX_REJECTIONS = 50;

interface Entry<P> {
  policy: P;
  origin: string;
  loadedAt: string;
  /** Trust material the compiled revision was built from. */
  deps: Set<string>;
  /** The document and trust material bytes it was compiled from (for the snapshot). */
  doc: unknown;
  material: Record<string, string>;
  rejectedUpdate?: { reason: string; at: string; origin: string };
}

export class PolicyStore<P extends CompiledPolicyLike> {
  private readonly entries = new Map<string, Entry<P>>();
  private readonly seq = new Map<string, number>();
  private readonly namespaces = new Map<string, NamespaceMeta>();
  private readonly rejections: RejectedUpdate[] = [];
  private readonly listeners = new Set<() => void>();
  private readonly pending = new Set<Promise<unknown>>();
  /** Deps of the latest compile attempt, good or bad, so a fixed Secret triggers a retry. */
  private readonly attemptDeps = new Map<string, Set<string>>();
  private readonly lastDocs = new Map<string, { doc: unknown; origin: string }>();
  /** Why the latest document of a policy was refused (cleared when a later one compiles). */
  private readonly lastRejected = new Map<string, { reason: string; at: string }>();
  syncState: SyncState = "starting";
  lastSyncAt: string | undefined;
  lastError: { message: string; at: string } | undefined;
  ready = false;
  /** Key management providers (Key Vault material); set by the agent's wiring. */
  keys: Pick<TrustMaterialResolver, "resolveKey"> | undefined;
  private readonly lastResolvers = new Map<string, TrustMaterialResolver>();

  constructor(
    private readonly sourceKind: "files" | "kubernetes",
    private readonly config: SelectionConfig,
    private readonly compile: PolicyCompiler<P>,
    private readonly log: SourceLogger,
  ) {}

  // ---- documents in -----------------------------------------------------------------

  /**
   * Compiles `doc` as policy `name`. On success it replaces the policy in force; on failure
   * the last good revision (if any) stays and the rejection is recorded. Only the newest
   * request per name may land (an older compile finishing late is dropped).
   */
  async upsert(
    name: string,
    doc: unknown,
    origin: string,
    resolver: TrustMaterialResolver,
  ): Promise<boolean> {
    const n = (this.seq.get(name) ?? 0) + 1;
    this.seq.set(name, n);
    this.lastDocs.set(name, { doc, origin });
    this.lastResolvers.set(name, resolver);
    const used = new Set<string>();
    const material: Record<string, string> = {};
    const recording: TrustMaterialResolver = {
      resolve: async (ref: TrustMaterialRef, signal?: AbortSignal) => {
        used.add(refKey(ref));
        const v = await resolver.resolve(ref, signal);
        material[materialKey(ref)] =
          typeof v === "string" ? `t:${v}` : `b:${Buffer.from(v).toString("base64")}`;
        return v;
      },
      resolveKey: async (ref: KeyVaultRef, signal?: AbortSignal) => {
        used.add(keyVaultRefKey(ref));
        const via = resolver.resolveKey ? resolver : this.keys;
        if (!via?.resolveKey) throw new Error("no key management providers are configured");
        const v = await via.resolveKey(ref, signal);
        material[`${keyVaultRefKey(ref)}#${ref.version ?? ""}`] =
          typeof v === "string" ? `t:${v}` : `b:${Buffer.from(v).toString("base64")}`;
        return v;
      },
    };
    const work = (async () => {
      try {
        const policy = await this.compile(doc, recording);
        if (this.seq.get(name) !== n) return false;
        this.attemptDeps.set(name, used);
        if (policy.name !== name) {
          throw new Error(`compiled policy is named "${policy.name}", expected "${name}"`);
        }
        const prev = this.entries.get(name);
        this.lastRejected.delete(name);
        this.entries.set(name, {
          policy,
          origin,
          loadedAt: new Date().toISOString(),
          deps: used,
          doc,
          material,
        });
        if (prev?.policy.revision !== policy.revision || prev?.rejectedUpdate) {
          this.log.info(
            { policy: name, revision: policy.revision, previous: prev?.policy.revision, origin },
            "policy loaded",
          );
          this.emit();
        }
        return true;
      } catch (e) {
        if (this.seq.get(name) !== n) return false;
        this.attemptDeps.set(name, used);
        this.reject(name, origin, errorMessage(e));
        return false;
      }
    })();
    this.pending.add(work);
    try {
      return await work;
    } finally {
      this.pending.delete(work);
    }
  }

  /** A policy was deleted at its source: a valid change, namespaces naming it now fail closed. */
  remove(name: string, origin: string): void {
    this.seq.set(name, (this.seq.get(name) ?? 0) + 1);
    this.lastDocs.delete(name);
    this.lastResolvers.delete(name);
    this.attemptDeps.delete(name);
    this.lastRejected.delete(name);
    const prev = this.entries.get(name);
    if (this.entries.delete(name)) {
      this.log.info({ policy: name, revision: prev?.policy.revision, origin }, "policy removed");
      this.emit();
    }
  }

  /** Records a rejection that is not tied to a compile (e.g. a whole file that does not parse). */
  reject(policy: string | undefined, origin: string, reason: string): void {
    const at = new Date().toISOString();
    const kept = policy !== undefined ? this.entries.get(policy) : undefined;
    if (kept) kept.rejectedUpdate = { reason, at, origin };
    if (policy !== undefined) this.lastRejected.set(policy, { reason, at });
    const r: RejectedUpdate = { origin, reason, at };
    if (policy !== undefined) r.policy = policy;
    if (kept) r.keptRevision = kept.policy.revision;
    this.rejections.unshift(r);
    if (this.rejections.length > MAX_REJECTIONS) this.rejections.length = MAX_REJECTIONS;
    this.log.warn(
      { policy, origin, reason, keptRevision: r.keptRevision },
      "policy update rejected; last good revision stays in force",
    );
    this.emit();
  }

  /** Policies whose last compile (good or bad) read any of the trust material `keys`. */
  dependentsOf(keys: ReadonlySet<string>): string[] {
    return [...this.attemptDeps].filter(([, deps]) => [...deps].some((d) => keys.has(d))).map(([n]) => n);
  }

  /** Recompiles the named policies from their last documents (trust material changed). */
  async recompile(names: Iterable<string>, resolver: TrustMaterialResolver): Promise<void> {
    await Promise.all(
      [...names].map((n) => {
        const last = this.lastDocs.get(n);
        return last ? this.upsert(n, last.doc, last.origin, resolver) : Promise.resolve(false);
      }),
    );
  }

  /** Key management material changed: recompiles the policies that read it (their revision follows). */
  async keysChanged(keys: ReadonlySet<string>): Promise<void> {
    await Promise.all(
      this.dependentsOf(keys).map((n) => {
        const last = this.lastDocs.get(n);
        const resolver = this.lastResolvers.get(n);
        return last && resolver ? this.upsert(n, last.doc, last.origin, resolver) : Promise.resolve(false);
      }),
    );
  }

  /** Trust material keys any current policy (or pending retry) depends on. */
  referencedKeys(): Set<string> {
    const out = new Set<string>();
    for (const deps of this.attemptDeps.values()) for (const d of deps) out.add(d);
    for (const e of this.entries.values()) for (const d of e.deps) out.add(d);
    return out;
  }

  /** Per known policy: the revision in force and whether its latest document was refused. */
  outcomes(): PolicyOutcome[] {
    const names = new Set([...this.lastDocs.keys(), ...this.entries.keys()]);
    return [...names].sort().map((name) => {
      const o: PolicyOutcome = { name };
      const e = this.entries.get(name);
      if (e) o.revision = e.policy.revision;
      const r = this.lastRejected.get(name);
      if (r) o.rejected = { ...r };
      return o;
    });
  }

  policyNames(): string[] {
    return [...this.lastDocs.keys()];
  }

  /** Waits for compiles in flight (used by sources to report readiness after a sync). */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  setNamespace(meta: NamespaceMeta): void {
    const prev = this.namespaces.get(meta.name);
    if (prev && sameAnnotations(prev.annotations, meta.annotations)) return;
    this.namespaces.set(meta.name, meta);
    this.emit();
  }

  deleteNamespace(name: string): void {
    if (this.namespaces.delete(name)) this.emit();
  }

  replaceNamespaces(all: NamespaceMeta[]): void {
    const next = new Map(all.map((m) => [m.name, m]));
    let changed = next.size !== this.namespaces.size;
    for (const [n, m] of next) {
      const prev = this.namespaces.get(n);
      if (!prev || !sameAnnotations(prev.annotations, m.annotations)) changed = true;
    }
    this.namespaces.clear();
    for (const [n, m] of next) this.namespaces.set(n, m);
    if (changed) this.emit();
  }

  // ---- snapshot (kubernetes source; snapshot.ts) ----------------------------------------

  /** Set while decisions come from a loaded snapshot rather than a live sync. */
  snapshot: { syncedAt: number; expiresAt: number; file: string } | undefined;

  snapshotStale(now: Date): boolean {
    return this.snapshot !== undefined && now.getTime() >= this.snapshot.expiresAt;
  }

  /** The policy set in force, as a snapshot body. Only meaningful from a synced source. */
  exportSnapshot(syncedAt: Date): SnapshotBody {
    return {
      format: SNAPSHOT_FORMAT,
      source: "kubernetes",
      syncedAt: syncedAt.toISOString(),
      writtenAt: new Date().toISOString(),
      policies: [...this.entries].map(([name, e]) => ({
        name,
        revision: e.policy.revision,
        origin: e.origin,
        doc: e.doc,
        material: { ...e.material },
      })),
      namespaces: [...this.namespaces.values()].map((m) => ({
        name: m.name,
        annotations: { ...m.annotations },
      })),
    };
  }

  /**
   * Loads a snapshot into an empty, unsynced store and marks it ready. Each policy is
   * recompiled from its recorded document and trust material and kept only if it compiles
   * to the recorded revision. Returns the names of dropped policies.
   */
  async loadSnapshot(body: SnapshotBody, file: string, maxAgeMs: number): Promise<string[]> {
    const syncedAt = Date.parse(body.syncedAt);
    const dropped: string[] = [];
    for (const p of body.policies) {
      const resolver: TrustMaterialResolver = {
        resolve: async (ref) => {
          const v = p.material[materialKey(ref)];
          if (v === undefined) throw new Error(`${refKey(ref)} key ${ref.key} is not in the snapshot`);
          return v.startsWith("t:") ? v.slice(2) : new Uint8Array(Buffer.from(v.slice(2), "base64"));
        },
        // Key Vault material as the agent last read it: the host has no Azure credentials.
        resolveKey: async (ref) => {
          const v = p.material[`${keyVaultRefKey(ref)}#${ref.version ?? ""}`];
          if (v === undefined) throw new Error(`${keyVaultRefKey(ref)} is not in the snapshot`);
          return v.startsWith("t:") ? v.slice(2) : new Uint8Array(Buffer.from(v.slice(2), "base64"));
        },
      };
      const ok = await this.upsert(p.name, p.doc, `${p.origin} (snapshot)`, resolver);
      const got = this.entries.get(p.name)?.policy.revision;
      if (!ok || got !== p.revision) {
        dropped.push(p.name);
        this.remove(p.name, `${p.origin} (snapshot)`);
        this.log.warn(
          { policy: p.name, recorded: p.revision, compiled: got },
          "snapshot policy does not compile to its recorded revision; dropped (its namespaces fail closed)",
        );
      }
    }
    for (const n of body.namespaces)
      this.namespaces.set(n.name, { name: n.name, annotations: { ...n.annotations } });
    this.snapshot = { syncedAt, expiresAt: syncedAt + maxAgeMs, file };
    this.lastSyncAt = body.syncedAt;
    this.syncState = "snapshot";
    this.ready = true;
    this.emit();
    return dropped;
  }

  /** The live source synced: forget what only the snapshot said. */
  leaveSnapshot(livePolicies: ReadonlySet<string>, liveNamespaces: ReadonlySet<string>): void {
    if (!this.snapshot) return;
    this.snapshot = undefined;
    for (const name of [...this.entries.keys()])
      if (!livePolicies.has(name)) this.remove(name, `ImagePolicy/${name} (gone since the snapshot)`);
    for (const name of [...this.namespaces.keys()])
      if (!liveNamespaces.has(name)) this.namespaces.delete(name);
    this.emit();
  }

  // ---- answers out --------------------------------------------------------------------

  select(namespace: string, now: Date, unknownNamespace: "empty" | "unknown"): Selection<P> {
    if (!this.ready && !(this.config.exemptNamespaces ?? []).includes(namespace)) {
      return {
        kind: "error",
        namespace,
        message: `policy source (${this.sourceKind}) has not synced yet`,
        failurePolicy: "Closed",
      };
    }
    if (this.snapshotStale(now) && !(this.config.exemptNamespaces ?? []).includes(namespace)) {
      return {
        kind: "error",
        namespace,
        message: `policy snapshot from ${new Date(this.snapshot!.syncedAt).toISOString()} is older than its maximum age and the ${this.sourceKind} source has not synced`,
        failurePolicy: "Closed",
      };
    }
    let meta = this.namespaces.get(namespace);
    if (meta === undefined && unknownNamespace === "empty") meta = { name: namespace, annotations: {} };
    // A view, not a copy: this runs on every CreateContainer, over every loaded policy.
    const policies = { get: (name: string) => this.entries.get(name)?.policy };
    return selectPolicy({ namespace, meta, policies, config: this.config, now });
  }

  policies(): P[] {
    return [...this.entries.values()].map((e) => e.policy);
  }

  /** Namespaces whose break-glass is valid at `now` (the pull path admits for them). */
  activeBreakGlass(now: Date): Array<{ namespace: string; until: number; reason?: string }> {
    const key = this.config.breakGlassAnnotation ?? DEFAULT_BREAK_GLASS_ANNOTATION;
    const out: Array<{ namespace: string; until: number; reason?: string }> = [];
    for (const meta of this.namespaces.values()) {
      if (!Object.hasOwn(meta.annotations, key)) continue;
      const sel = this.select(meta.name, now, "unknown");
      if (sel.kind !== "policy" || !sel.breakGlass) continue;
      const b: { namespace: string; until: number; reason?: string } = {
        namespace: meta.name,
        until: sel.breakGlass.until.getTime(),
      };
      if (sel.breakGlass.reason !== undefined) b.reason = sel.breakGlass.reason;
      out.push(b);
    }
    return out;
  }

  /**
   * Policies that decide for some namespace right now: the default policy plus every policy
   * a non-exempt namespace names. Pull-time "any policy in use" must not count a loaded
   * policy nobody selects (e.g. a lax Audit policy kept for later).
   */
  policiesInUse(): P[] {
    if (this.snapshotStale(new Date())) return [];
    const annotation = this.config.policyAnnotation ?? DEFAULT_POLICY_ANNOTATION;
    const exempt = new Set(this.config.exemptNamespaces ?? []);
    const names = new Set<string>();
    if (this.config.defaultPolicy !== undefined) names.add(this.config.defaultPolicy);
    for (const meta of this.namespaces.values()) {
      if (exempt.has(meta.name)) continue;
      const named = meta.annotations[annotation];
      if (named) names.add(named);
    }
    return [...names].map((n) => this.get(n)).filter((p): p is P => p !== undefined);
  }

  /**
   * The known namespaces that `policy` (this revision) decides for at `now`, sorted. A pull
   * asks them when the policy's conditions read `request.namespace` (docs/pull-semantics.md).
   */
  namespacesUsing(policy: { name: string; revision: string }, now: Date): string[] {
    const out: string[] = [];
    for (const meta of this.namespaces.values()) {
      const sel = this.select(meta.name, now, "unknown");
      if (sel.kind === "policy" && sel.policy.name === policy.name && sel.policy.revision === policy.revision)
        out.push(meta.name);
    }
    return out.sort();
  }

  get(name: string): P | undefined {
    return this.entries.get(name)?.policy;
  }

  defaultPolicy(): P | undefined {
    if (this.snapshotStale(new Date())) return undefined;
    return this.config.defaultPolicy === undefined ? undefined : this.get(this.config.defaultPolicy);
  }

  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  emit(): void {
    for (const cb of [...this.listeners]) {
      try {
        cb();
      } catch (e) {
        this.log.error({ err: errorMessage(e) }, "policy change listener threw");
      }
    }
  }

  status(): SourceStatus {
    const policies: PolicyStatusEntry[] = [...this.entries].map(([name, e]) => {
      const s: PolicyStatusEntry = {
        name,
        revision: e.policy.revision,
        mode: e.policy.mode,
        failurePolicy: e.policy.failurePolicy,
        origin: e.origin,
        loadedAt: e.loadedAt,
      };
      if (e.rejectedUpdate) s.rejectedUpdate = { ...e.rejectedUpdate };
      return s;
    });
    const sync: SourceStatus["sync"] = { state: this.syncState };
    if (this.lastSyncAt) sync.lastSyncAt = this.lastSyncAt;
    if (this.lastError) {
      sync.lastError = this.lastError.message;
      sync.lastErrorAt = this.lastError.at;
    }
    const stale = this.snapshotStale(new Date());
    if (stale) {
      sync.lastError = `policy snapshot from ${new Date(this.snapshot!.syncedAt).toISOString()} is older than its maximum age`;
    }
    const out: SourceStatus = {
      source: this.sourceKind,
      ready: this.ready && !stale,
      sync,
      policies: policies.sort((a, b) => a.name.localeCompare(b.name)),
      rejected: this.rejections.map((r) => ({ ...r })),
      namespaces: this.namespaces.size,
    };
    if (this.config.defaultPolicy !== undefined) out.defaultPolicy = this.config.defaultPolicy;
    return out;
  }
}

function sameAnnotations(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

