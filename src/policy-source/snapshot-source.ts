// A read-only policy source over the on-host snapshot (snapshot.ts). The pull verifier's
// in-process fallback uses it for the kubernetes source: on the host it has no credentials
// for the API server, so the snapshot the agent last wrote is the only word it can trust.
import { type CompiledPolicyLike, engineCompiler, type PolicyCompiler } from "./model.js";
import { readSnapshot } from "./snapshot.js";
import { PolicyStore } from "./store.js";
import {
  type CompiledPolicy,
  type PolicySource,
  type Selection,
  type SelectionConfig,
  type SourceLogger,
  type SourceStatus,
  silentLogger,
} from "./types.js";

export interface SnapshotSourceOptions<P extends CompiledPolicyLike> {
  path: string;
  maxAgeMs: number;
  config: SelectionConfig;
  compile?: PolicyCompiler<P>;
  logger?: SourceLogger;
}

export class SnapshotPolicySource<P extends CompiledPolicyLike = CompiledPolicy> implements PolicySource<P> {
  private readonly store: PolicyStore<P>;

  constructor(private readonly o: SnapshotSourceOptions<P>) {
    this.store = new PolicyStore<P>(
      "kubernetes",
      o.config,
      o.compile ?? (engineCompiler as unknown as PolicyCompiler<P>),
      o.logger ?? silentLogger,
    );
  }

  /** Loads the snapshot; throws (SnapshotError) when there is none usable. */
  async start(): Promise<void> {
    if (this.store.ready) return;
    const body = readSnapshot(this.o.path);
    await this.store.loadSnapshot(body, this.o.path, this.o.maxAgeMs);
  }
  async stop(): Promise<void> {
    await this.store.settle();
  }
  select(namespace: string, now: Date = new Date()): Selection<P> {
    return this.store.select(namespace, now, "unknown");
  }
  policies(): P[] {
    return this.store.policies();
  }
  policiesInUse(): P[] {
    return this.store.policiesInUse();
  }
  defaultPolicy(): P | undefined {
    return this.store.defaultPolicy();
  }
  activeBreakGlass(now: Date = new Date()): Array<{ namespace: string; until: number; reason?: string }> {
    return this.store.activeBreakGlass(now);
  }
  onChange(cb: () => void): () => void {
    return this.store.onChange(cb);
  }
  status(): SourceStatus {
    return this.store.status();
  }
}
