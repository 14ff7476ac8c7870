// The trust-material watches of the Kubernetes policy source: one single-object informer per
// Secret or ConfigMap a policy references (list+watch with a metadata.name field selector, so
// RBAC can grant exactly those objects), the TrustMaterialResolver that compiles read through,
// recompiles when a watched object changes, and stopping informers no policy references.
import type { CoreV1Api, KubeConfig, KubernetesListObject, KubernetesObject } from "@kubernetes/client-node";
import { EngineError } from "../engine/errors.js";
import type { TrustMaterialRef, TrustMaterialResolver } from "../engine/policy/model.js";
import { type CompiledPolicyLike, refKey } from "../policy-source/model.js";
import { trustObjectData } from "../policy-source/objects.js";
import type { PolicyStore } from "../policy-source/store.js";
import { type BackoffOptions, Reflector } from "./reflector.js";

export type KObj = KubernetesObject & Record<string, unknown>;

interface TrustWatch {
  kind: "Secret" | "ConfigMap";
  namespace: string;
  name: string;
  reflector: Reflector<KObj>;
  synced: Promise<void>;
}

export interface TrustWatchesOptions<P extends CompiledPolicyLike> {
  kc: KubeConfig;
  core: CoreV1Api;
  backoff: BackoffOptions;
  /** How long a compile waits for a referenced object's first sync. */
  syncTimeoutMs: number;
  store: PolicyStore<P>;
  /** Whether the source is stopped (no informer starts, no collection runs). */
  stopped(): boolean;
  /** Bounds a list request in time. */
  timed<T>(what: string, p: Promise<T>): Promise<T>;
  onError(what: string, e: unknown, retryInMs: number): void;
  onRecovered(what: string): void;
  /** A watch was stopped: its failures no longer count. */
  onDropped(what: string): void;
}

export class TrustWatches<P extends CompiledPolicyLike> {
  private readonly watches = new Map<string, TrustWatch>();
  private gcTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: TrustWatchesOptions<P>) {}

  /** The informers, for status. */
  reflectors(): Reflector<KObj>[] {
    return [...this.watches.values()].map((w) => w.reflector);
  }

  /** Watched objects as "Kind/namespace/name", sorted. */
  keys(): string[] {
    return [...this.watches.keys()].sort();
  }

  async stop(): Promise<void> {
    if (this.gcTimer) clearTimeout(this.gcTimer);
    await Promise.all([...this.watches.values()].map((w) => w.reflector.stop()));
    this.watches.clear();
  }

  readonly resolver: TrustMaterialResolver = {
    resolve: async (ref: TrustMaterialRef): Promise<Uint8Array> => {
      const w = this.ensure(ref);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new EngineError(
                "REGISTRY_TIMEOUT",
                `${ref.kind} ${ref.namespace}/${ref.name} could not be read from the API server`,
              ),
            ),
          this.o.syncTimeoutMs,
        );
      });
      try {
        await Promise.race([w.synced, timeout]);
      } finally {
        clearTimeout(timer);
      }
      const obj = w.reflector.get(ref.name, ref.namespace);
      if (!obj) throw new EngineError("NOT_FOUND", `${ref.kind} ${ref.namespace}/${ref.name} does not exist`);
      const data = trustObjectData(ref.kind, obj);
      const v = data.get(ref.key);
      if (!v)
        throw new EngineError(
          "NOT_FOUND",
          `${ref.kind} ${ref.namespace}/${ref.name} has no key "${ref.key}"`,
        );
      return v;
    },
  };

  private ensure(ref: TrustMaterialRef): TrustWatch {
    const key = refKey(ref);
    const existing = this.watches.get(key);
    if (existing) return existing;
    const plural = ref.kind === "Secret" ? "secrets" : "configmaps";
    const fieldSelector = `metadata.name=${ref.name}`;
    let markSynced = () => {};
    const synced = new Promise<void>((r) => {
      markSynced = r;
    });
    const onChange = () => {
      // Recompile the policies built from this object; their revision follows the bytes.
      const names = this.o.store.dependentsOf(new Set([key]));
      if (names.length > 0) void this.o.store.recompile(names, this.resolver).then(() => this.scheduleGc());
    };
    const list = () =>
      this.o.timed(
        `list ${plural}`,
        (ref.kind === "Secret"
          ? this.o.core.listNamespacedSecret({ namespace: ref.namespace, fieldSelector })
          : this.o.core.listNamespacedConfigMap({
              namespace: ref.namespace,
              fieldSelector,
            })) as unknown as Promise<KubernetesListObject<KObj>>,
      );
    let initial = true;
    const reflector = new Reflector<KObj>(
      this.o.kc,
      `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/${plural}`,
      list,
      {
        // Events of the initial list are not changes: the compile waiting on `synced` reads them.
        add: () => initial || onChange(),
        update: () => initial || onChange(),
        delete: () => initial || onChange(),
        synced: () => {
          initial = false;
          markSynced();
        },
        error: (e, retry) => this.o.onError(`${ref.kind} ${ref.namespace}/${ref.name}`, e, retry),
        recovered: () => this.o.onRecovered(`${ref.kind} ${ref.namespace}/${ref.name}`),
      },
      this.o.backoff,
      fieldSelector,
    );
    const w: TrustWatch = { kind: ref.kind, namespace: ref.namespace, name: ref.name, reflector, synced };
    this.watches.set(key, w);
    if (!this.o.stopped()) reflector.start();
    return w;
  }

  /** Stops informers for trust objects no policy references (after compiles settle). */
  scheduleGc(): void {
    if (this.gcTimer || this.o.stopped()) return;
    this.gcTimer = setTimeout(() => {
      this.gcTimer = undefined;
      void this.o.store.settle().then(() => {
        if (this.o.stopped()) return;
        const used = this.o.store.referencedKeys();
        for (const [key, w] of this.watches) {
          if (used.has(key)) continue;
          this.watches.delete(key);
          this.o.onDropped(`${w.kind} ${w.namespace}/${w.name}`);
          void w.reflector.stop();
        }
      });
    }, 100);
    this.gcTimer.unref();
  }
}
