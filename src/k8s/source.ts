// Kubernetes policy source: informers on Namespaces and the cluster-scoped ImagePolicy CRD
// (imagepolicies.tollgate.dev/v1alpha1), plus one single-object informer per Secret or
// ConfigMap that a policy references. It implements the policy model's
// TrustMaterialResolver against those informers' caches (the per-object informers and the
// resolver live in trust-watches.ts).
//
// Least privilege: the agent never lists or watches Secrets cluster-wide. For each
// referenced object it lists+watches `/api/v1/namespaces/<ns>/secrets?fieldSelector=
// metadata.name=<name>`; kube-apiserver authorizes a list/watch with a metadata.name field
// selector against RBAC `resourceNames`, so RBAC can grant exactly the trust objects (or,
// coarser, get/list/watch on secrets+configmaps in a dedicated trust namespace). Informers
// for objects no policy references any more are stopped.
//
// Behaviour under failure (design: invalid configuration never widens access):
//  - before the first full sync, select() answers error/Closed ("not synced"): not ready;
//  - an ImagePolicy update that does not validate/compile (or whose trust material is
//    missing) is rejected; the last good revision stays, the rejection is logged and in status;
//  - a deleted ImagePolicy is a valid change: namespaces naming it fail closed;
//  - 410 Gone → relist (client-node ListWatch); dropped connections and an unreachable API
//    server → retry with exponential back-off; the last synced state stays in force meanwhile;
//  - a namespace not (yet) in the cache → error/Closed, never the default policy.
// Known gap: a half-open watch connection is only detected by TCP keepalive (client-node
// sets 30 s on its sockets); there is no idle watchdog yet.

import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesListObject,
} from "@kubernetes/client-node";
import { EngineError } from "../engine/errors.js";
import type { CompiledPolicy } from "../engine/policy/model.js";
import { type CompiledPolicyLike, engineCompiler, type PolicyCompiler } from "../policy-source/model.js";
import { isRecord } from "../base/record.js";
import { stringMap } from "../policy-source/objects.js";
import { readSnapshot, type SnapshotBody, writeSnapshot } from "../policy-source/snapshot.js";
import { errorMessage } from "../base/errors.js";
import { PolicyStore } from "../policy-source/store.js";
import { StoreBackedSource } from "../policy-source/store-backed.js";
import {
  type PolicyOutcome,
  type PolicySource,
  type SelectionConfig,
  type SourceLogger,
  silentLogger,
} from "../policy-source/types.js";
import { type BackoffOptions, DEFAULT_BACKOFF, Reflector } from "./reflector.js";
import { type KObj, TrustWatches } from "./trust-watches.js";

export const GROUP = "tollgate.dev";
export const VERSION = "v1alpha1";
export const PLURAL = "imagepolicies";

export interface KubernetesSourceOptions<P extends CompiledPolicyLike> {
  kubeConfig: KubeConfig;
  config: SelectionConfig;
  /** Defaults to the engine's compilePolicy. */
  compile?: PolicyCompiler<P>;
  logger?: SourceLogger;
  backoff?: Partial<BackoffOptions>;
  /** Abandon a list request after this long (default 30 s). */
  listTimeoutMs?: number;
  /** How long a compile waits for a referenced Secret/ConfigMap's first sync (default 10 s). */
  trustSyncTimeoutMs?: number;
  /** Cap on ImagePolicy objects held (default 1000). */
  maxPolicies?: number;
  /**
   * On-host snapshot of the last good policy set (src/policy-source/snapshot.ts): loaded at
   * start until the live sync, rewritten while synced (on change and every refreshMs).
   */
  snapshot?: { path: string; maxAgeMs: number; refreshMs?: number };
}

/** An ImagePolicy object with this agent's outcome for it. */
export interface PolicyObjectOutcome extends PolicyOutcome {
  generation: number;
  resourceVersion: string;
  /** The object's .status as stored. */
  status: unknown;
}

export class KubernetesPolicySource<P extends CompiledPolicyLike = CompiledPolicy>
  extends StoreBackedSource<P>
  implements PolicySource<P>
{
  protected readonly unknownNamespace = "unknown" as const;
  protected readonly store: PolicyStore<P>;
  private readonly log: SourceLogger;
  private readonly kc: KubeConfig;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly backoff: BackoffOptions;
  private readonly listTimeoutMs: number;
  private readonly maxPolicies: number;
  private readonly namespaces: Reflector<KObj>;
  private readonly imagePolicies: Reflector<KObj>;
  private readonly trust: TrustWatches<P>;
  private readonly failing = new Set<string>();
  /** Spec last handed to the compiler per policy: status-only updates are not recompiled. */
  private readonly compiledSpec = new Map<string, string>();
  private readyWaiters: (() => void)[] = [];
  private stopped = true;
  /** True once the informers synced with the API server (a loaded snapshot is not that). */
  private liveSynced = false;
  private readonly snapshotOpts: KubernetesSourceOptions<P>["snapshot"];
  private snapshotTimer: NodeJS.Timeout | undefined;
  private snapshotRefresh: NodeJS.Timeout | undefined;

  constructor(options: KubernetesSourceOptions<P>) {
    super();
    this.kc = options.kubeConfig;
    this.log = options.logger ?? silentLogger;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.listTimeoutMs = options.listTimeoutMs ?? 30_000;
    this.maxPolicies = options.maxPolicies ?? 1000;
    this.store = new PolicyStore<P>(
      "kubernetes",
      options.config,
      options.compile ?? (engineCompiler as unknown as PolicyCompiler<P>),
      this.log,
    );
    this.snapshotOpts = options.snapshot;
    if (this.snapshotOpts) this.store.onChange(() => this.scheduleSnapshot());
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
    this.trust = new TrustWatches<P>({
      kc: this.kc,
      core: this.core,
      backoff: this.backoff,
      syncTimeoutMs: options.trustSyncTimeoutMs ?? 10_000,
      store: this.store,
      stopped: () => this.stopped,
      timed: (what, p) => this.timed(what, p),
      onError: (what, e, retry) => this.onReflectorError(what, e, retry),
      onRecovered: (what) => this.onRecovered(what),
      onDropped: (what) => this.failing.delete(what),
    });

    this.namespaces = new Reflector<KObj>(
      this.kc,
      "/api/v1/namespaces",
      () =>
        this.timed(
          "list namespaces",
          this.core.listNamespace() as unknown as Promise<KubernetesListObject<KObj>>,
        ),
      {
        add: (o) => this.onNamespace(o),
        update: (o) => this.onNamespace(o),
        delete: (o) => this.store.deleteNamespace(o.metadata?.name ?? ""),
        synced: () => this.checkReady(),
        error: (e, retry) => this.onReflectorError("namespaces", e, retry),
        recovered: () => this.onRecovered("namespaces"),
      },
      this.backoff,
    );
    this.imagePolicies = new Reflector<KObj>(
      this.kc,
      `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      () =>
        this.timed(
          "list imagepolicies",
          this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }) as Promise<
            KubernetesListObject<KObj>
          >,
        ),
      {
        add: (o) => this.onPolicy(o),
        update: (o) => this.onPolicy(o),
        delete: (o) => this.onPolicyDeleted(o),
        synced: () => this.checkReady(),
        error: (e, retry) => this.onReflectorError("imagepolicies", e, retry),
        recovered: () => this.onRecovered("imagepolicies"),
      },
      this.backoff,
    );
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.store.syncState = "starting";
    if (this.snapshotOpts && !this.store.ready) await this.loadSnapshot(this.snapshotOpts);
    this.namespaces.start();
    this.imagePolicies.start();
  }

  /** Resolves once both informers have synced and the listed policies have compiled. */
  whenReady(timeoutMs?: number): Promise<void> {
    if (this.store.ready) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t =
        timeoutMs === undefined
          ? undefined
          : setTimeout(
              () =>
                reject(new EngineError("REGISTRY_TIMEOUT", "Kubernetes policy source did not sync in time")),
              timeoutMs,
            );
      this.readyWaiters.push(() => {
        if (t) clearTimeout(t);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.snapshotTimer) clearTimeout(this.snapshotTimer);
    if (this.snapshotRefresh) clearInterval(this.snapshotRefresh);
    await Promise.all([this.namespaces.stop(), this.imagePolicies.stop(), this.trust.stop()]);
    await this.store.settle();
    this.store.syncState = "stopped";
  }

  /** Per informer: resume point (resourceVersion) and whether it has synced. */
  informers(): { path: string; resourceVersion: string; synced: boolean }[] {
    return [this.namespaces, this.imagePolicies, ...this.trust.reflectors()].map((r) => ({
      path: r.path,
      resourceVersion: r.resourceVersion(),
      synced: r.synced,
    }));
  }

  /**
   * Each ImagePolicy object as last seen, with what this agent made of it (for the status
   * writer): undefined until the informers synced live (a snapshot says nothing about the
   * objects' current generations).
   */
  async objectOutcomes(): Promise<PolicyObjectOutcome[] | undefined> {
    await this.store.settle();
    if (!this.liveSynced || this.stopped) return undefined;
    const outcomes = new Map(this.store.outcomes().map((o) => [o.name, o]));
    return this.imagePolicies
      .list()
      .filter((o) => o.metadata?.name)
      .map((o) => {
        const name = o.metadata!.name!;
        return {
          ...(outcomes.get(name) ?? { name }),
          generation: Number(o.metadata?.generation ?? 0),
          resourceVersion: o.metadata?.resourceVersion ?? "",
          status: o.status,
        };
      });
  }

  /** Trust objects currently watched, as "Kind/namespace/name" (for status and tests). */
  watchedTrustObjects(): string[] {
    return this.trust.keys();
  }

  // ---- informer events ----------------------------------------------------------------

  private onNamespace(o: KObj): void {
    const name = o.metadata?.name;
    if (!name) return;
    let annotations: Record<string, string>;
    try {
      annotations = stringMap(o.metadata?.annotations, "metadata.annotations");
    } catch (e) {
      // Cannot happen with a real API server; fail closed for this namespace if it does.
      this.log.warn(
        { namespace: name, err: errorMessage(e) },
        "namespace with malformed annotations ignored",
      );
      this.store.deleteNamespace(name);
      return;
    }
    this.store.setNamespace({ name, annotations });
  }

  private onPolicy(o: KObj): void {
    const name = o.metadata?.name;
    if (!name) return;
    const origin = `ImagePolicy/${name}@${o.metadata?.resourceVersion ?? "?"}`;
    if (!this.store.policyNames().includes(name) && this.store.policyNames().length >= this.maxPolicies) {
      this.store.reject(name, origin, `more than ${this.maxPolicies} ImagePolicies; this one is ignored`);
      return;
    }
    // Writes to .status (ours, by the status writer) change the object but not what it says.
    const spec = JSON.stringify(o.spec ?? null);
    if (this.compiledSpec.get(name) === spec) return;
    this.compiledSpec.set(name, spec);
    void this.store.upsert(name, o, origin, this.trust.resolver).then(() => this.trust.scheduleGc());
  }

  private onPolicyDeleted(o: KObj): void {
    const name = o.metadata?.name;
    if (!name) return;
    this.compiledSpec.delete(name);
    this.store.remove(name, `ImagePolicy/${name}@${o.metadata?.resourceVersion ?? "?"}`);
    this.trust.scheduleGc();
  }

  private onReflectorError(what: string, e: unknown, retryInMs: number): void {
    const message = `${what}: ${describeError(e)}`;
    this.failing.add(what);
    this.store.lastError = { message, at: new Date().toISOString() };
    if (this.liveSynced) this.store.syncState = "reconnecting";
    this.log.warn({ informer: what, err: message, retryInMs }, "Kubernetes watch failed; retrying");
  }

  private onRecovered(what: string): void {
    this.failing.delete(what);
    if (this.liveSynced && this.failing.size === 0) {
      this.store.syncState = "synced";
      this.store.lastSyncAt = new Date().toISOString();
      this.log.info({ informer: what }, "Kubernetes watch recovered");
    }
  }

  private checkReady(): void {
    if (this.liveSynced || !this.namespaces.synced || !this.imagePolicies.synced) return;
    // The listed policies' compiles were started synchronously by the list's add events.
    void this.store.settle().then(() => {
      if (this.liveSynced || this.stopped) return;
      this.liveSynced = true;
      const names = (r: Reflector<KObj>) =>
        new Set(
          r
            .list()
            .map((o) => o.metadata?.name ?? "")
            .filter((n) => n !== ""),
        );
      this.store.leaveSnapshot(names(this.imagePolicies), names(this.namespaces));
      this.store.ready = true;
      this.store.syncState = this.failing.size === 0 ? "synced" : "reconnecting";
      this.store.lastSyncAt = new Date().toISOString();
      this.log.info({ policies: this.store.policies().length }, "Kubernetes policy source synced");
      this.startSnapshotRefresh();
      this.store.emit();
      const waiters = this.readyWaiters;
      this.readyWaiters = [];
      for (const w of waiters) w();
    });
  }

  // ---- snapshot ---------------------------------------------------------------------------

  private async loadSnapshot(o: { path: string; maxAgeMs: number }): Promise<void> {
    let body: SnapshotBody;
    try {
      body = readSnapshot(o.path);
    } catch (e) {
      // Missing on a fresh node; anything else is worth a warning. Either way: unsynced.
      const missing = /ENOENT/.test(errorMessage(e));
      (missing ? this.log.info : this.log.warn).call(
        this.log,
        { snapshot: o.path, err: errorMessage(e) },
        "no usable policy snapshot; deciding only after the first sync",
      );
      return;
    }
    const dropped = await this.store.loadSnapshot(body, o.path, o.maxAgeMs);
    const stale = this.store.snapshotStale(new Date());
    this.log[stale ? "warn" : "info"](
      {
        snapshot: o.path,
        syncedAt: body.syncedAt,
        policies: this.store.policies().map((p) => ({ name: p.name, revision: p.revision })),
        dropped,
        stale,
      },
      stale
        ? "policy snapshot is older than its maximum age: failure policy until the API server syncs"
        : "deciding from the policy snapshot until the API server syncs",
    );
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w();
  }

  private scheduleSnapshot(): void {
    if (!this.snapshotOpts || this.snapshotTimer || !this.liveSynced || this.stopped) return;
    this.snapshotTimer = setTimeout(() => {
      this.snapshotTimer = undefined;
      void this.store.settle().then(() => this.writeSnapshotNow());
    }, 50);
    this.snapshotTimer.unref();
  }

  /** Rewrites the snapshot while the watches are live, so a quiet cluster's does not age out. */
  private startSnapshotRefresh(): void {
    if (!this.snapshotOpts) return;
    this.writeSnapshotNow();
    const every =
      this.snapshotOpts.refreshMs ?? Math.min(600_000, Math.max(1000, this.snapshotOpts.maxAgeMs / 4));
    this.snapshotRefresh = setInterval(() => this.writeSnapshotNow(), every);
    this.snapshotRefresh.unref();
  }

  /** Writes only what a live, synced source says; never while reconnecting. */
  private writeSnapshotNow(): void {
    const o = this.snapshotOpts;
    if (!o || this.stopped || !this.liveSynced || this.store.syncState !== "synced") return;
    try {
      writeSnapshot(o.path, this.store.exportSnapshot(new Date()));
    } catch (e) {
      this.log.warn({ snapshot: o.path, err: errorMessage(e) }, "could not write the policy snapshot");
    }
  }

  private timed<T>(what: string, p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new EngineError("REGISTRY_TIMEOUT", `${what}: no answer in ${this.listTimeoutMs} ms`)),
        this.listTimeoutMs,
      );
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }
}

function describeError(e: unknown): string {
  if (isRecord(e)) {
    const code = e.code ?? e.statusCode;
    const msg = typeof e.message === "string" ? e.message : JSON.stringify(e).slice(0, 200);
    return code !== undefined ? `${msg} (${String(code)})` : msg;
  }
  return errorMessage(e);
}
