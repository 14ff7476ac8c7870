// A read-only policy source over the on-host snapshot (snapshot.ts). The pull verifier's
// in-process fallback uses it for the kubernetes source: on the host it has no credentials
// for the API server, so the snapshot the agent last wrote is the only word it can trust.
import { type CompiledPolicyLike, engineCompiler, type PolicyCompiler } from "./model.js";
import { readSnapshot } from "./snapshot.js";
import { PolicyStore } from "./store.js";
import { StoreBackedSource } from "./store-backed.js";
import {
  type CompiledPolicy,
  type PolicySource,
  type SelectionConfig,
  type SourceLogger,
  silentLogger,
} from "./types.js";

export interface SnapshotSourceOptions<P extends CompiledPolicyLike> {
  path: string;
  maxAgeMs: number;
  config: SelectionConfig;
  compile?: PolicyCompiler<P>;
  logger?: SourceLogger;
}

export class SnapshotPolicySource<P extends CompiledPolicyLike = CompiledPolicy>
  extends StoreBackedSource<P>
  implements PolicySource<P>
{
  protected readonly store: PolicyStore<P>;
  protected readonly unknownNamespace = "unknown" as const;

  constructor(private readonly o: SnapshotSourceOptions<P>) {
    super();
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
}
