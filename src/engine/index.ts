// Public engine API: createEngine → Engine.verify(subject, compiledPolicy) → Verdict.
// The engine knows nothing of containerd, NRI or Kubernetes.
import { discoverAttestations } from "./attest/index.js";
import { verifyCosign } from "./cosign/index.js";
import { verifyNotation } from "./notation/index.js";
import {
  createRegistryClient,
  discoverSignatures,
  type RegistryClient,
  type RegistryClientOptions,
} from "./registry/index.js";
import { type CoreOptions, createEngineCore, type Engine, type EngineDeps } from "./verify.js";

export interface EngineOptions extends CoreOptions {
  /** A registry client to share, or options to create one (hosts.toml dir, docker configs, limits). */
  registry?: RegistryClientOptions | RegistryClient;
  /** Test seams: replace discovery or a signature verifier. */
  verifiers?: Partial<EngineDeps>;
}

function isClient(r: RegistryClientOptions | RegistryClient | undefined): r is RegistryClient {
  return typeof (r as RegistryClient | undefined)?.listReferrers === "function";
}

export function createEngine(opts: EngineOptions = {}): Engine & { registry: RegistryClient } {
  const registry = isClient(opts.registry) ? opts.registry : createRegistryClient(opts.registry ?? {});
  const deps: EngineDeps = {
    discover: (subject, o) => discoverSignatures(registry, subject, o),
    notation: (source, cfg, o) => verifyNotation(source, cfg, o),
    cosign: (source, cfg, o) => verifyCosign(source, cfg, o),
    attestations: (subject, o) => discoverAttestations(registry, subject, o),
    ...opts.verifiers,
  };
  return Object.assign(createEngineCore(deps, opts), { registry });
}

export { CACHE_DEFAULTS, cacheKey, type VerdictCacheOptions, type VerdictCacheStats } from "./cache.js";
export { EngineError, type ErrorCode, isEngineError, toEngineError } from "./errors.js";
// Key management providers: the registry of providers (it loads the Azure SDKs on the first
// Key Vault reference, so exporting it here keeps them out of callers that never read a vault).
export { KEY_VAULT_NAME_RE, KEY_VAULT_VERSION_RE } from "./keys/azurekms.js";
export { KeyProviders, type KeyProvidersOptions, type StatusOnlyProvider } from "./keys/providers.js";
export type { KeyProvider, KeyProviderEvents, KeyProviderStatus, KeyProviderType } from "./keys/types.js";
export * from "./policy/index.js";
export * from "./sigstore-trust/index.js";
export type * from "./types.js";
export type { Engine, EngineDeps, EngineStats, VerifierCallOptions, VerifyOptions } from "./verify.js";
export { createEngineCore } from "./verify.js";
