// Key management providers: where the trust material of a policy comes from (certificates for
// notation trust stores, public keys for cosign). Every source sits behind one interface so the
// policy compiler, status, doctor and metrics treat them alike:
//   inline      – PEM written into the ImagePolicy (always ready, changes with the document);
//   kubernetes  – Secret/ConfigMap keys read through the policy source (informers or files);
//   azurekeyvault – certificates and keys in an Azure Key Vault, refreshed on an interval.
// A provider answers with bytes; the compiler checks them like inline PEM and the policy
// revision is a hash over them, so new material means a new revision (old verdicts unreachable).
import type { TrustMaterialRef } from "../policy/model.js";

export type KeyProviderType = "inline" | "kubernetes" | "files" | "azurekeyvault";

/** What /v1/status, doctor and the metrics show per provider (never key material or secrets). */
export interface KeyProviderStatus {
  provider: string;
  type: KeyProviderType;
  /** Serving material: every object it was asked for has a good copy (maybe a stale one). */
  ready: boolean;
  /** The last refresh failed and the last good material is being served. */
  stale: boolean;
  /** Objects asked for, e.g. `certificate release-ca` or `key cosign@3f1c…`. */
  objects: string[];
  /** Last successful refresh (RFC 3339). */
  lastRefresh?: string;
  /** The last refresh's error, a sentence without credentials. */
  error?: string;
  errorAt?: string;
  /** sha256 over the material served, so a change is visible without showing it. */
  revision?: string;
  refreshIntervalSeconds?: number;
}

export interface KeyProvider {
  readonly name: string;
  readonly type: KeyProviderType;
  /** The material `ref` names; throws (with a sentence) when there is no good copy at all. */
  resolve(ref: TrustMaterialRef, signal?: AbortSignal): Promise<Uint8Array | string>;
  status(): KeyProviderStatus;
  /** `cb` gets the trust refKeys (policy-source/model.ts refKey) whose material changed. */
  onChange(cb: (keys: Set<string>) => void): () => void;
  stop(): void;
}

/** Counters a provider reports into (the agent maps them onto Prometheus metrics). */
export interface KeyProviderEvents {
  refreshed?(provider: string, ok: boolean): void;
}
