// The answers every policy source gives straight from its PolicyStore; sources differ only
// in how they feed the store (files, informers, the on-host snapshot).
import type { TrustMaterialResolver } from "./model.js";
import type { PolicyStore } from "./store.js";
import type { CompiledPolicyLike, PolicyOutcome, Selection, SourceStatus } from "./types.js";

/** Change notifications of key management providers (the refKeys whose material changed). */
export interface KeyChanges {
  onChange(cb: (keys: Set<string>) => void): () => void;
  /** Forget material no policy reads any more. */
  retain?(keys: ReadonlySet<string>): void;
}

export abstract class StoreBackedSource<P extends CompiledPolicyLike> {
  protected abstract readonly store: PolicyStore<P>;
  /** "empty": a namespace the source never saw gets the default policy (files); "unknown": fail closed. */
  protected abstract readonly unknownNamespace: "empty" | "unknown";

  select(namespace: string, now: Date = new Date()): Selection<P> {
    return this.store.select(namespace, now, this.unknownNamespace);
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
  namespacesUsing(policy: { name: string; revision: string }, now: Date = new Date()): string[] {
    return this.store.namespacesUsing(policy, now);
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
  policyOutcomes(): PolicyOutcome[] {
    return this.store.outcomes();
  }
  /**
   * Routes Key Vault references to the key management providers and recompiles the policies
   * that read material a provider reports as changed. Returns the unsubscribe function.
   */
  useKeyProviders(keys: Required<Pick<TrustMaterialResolver, "resolveKey">> & KeyChanges): () => void {
    this.store.keys = keys;
    const off = keys.onChange((changed) => void this.store.keysChanged(changed));
    const offGc = this.store.onChange(() => keys.retain?.(this.store.referencedKeys()));
    return () => {
      off();
      offGc();
    };
  }
}
