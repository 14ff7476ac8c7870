// Builds the policy source and the engine from the agent configuration. Shared by the
// agent process and the pull verifier's in-process fallback (same file, same answers).

import { storedName } from "../engine/identity.js";
import {
  createEngine,
  type KeyProviders,
  TufTrustedRoots,
  type TufTrustedRootsOptions,
} from "../engine/index.js";
import { VerificationLimits } from "../engine/limits.js";
import type { RequestEvent } from "../engine/registry/client.js";
import { buildCredentialResolver, type CredentialResolver } from "../engine/registry/credentials/index.js";
import type { KubernetesPolicySource } from "../k8s/index.js";
import { FilePolicySource } from "../policy-source/files.js";
import type { StoreBackedSource } from "../policy-source/store-backed.js";
import type { CompiledPolicy, PolicySource, SourceLogger } from "../policy-source/types.js";
import type { AgentConfig } from "../config/agent.js";

export type AgentEngine = ReturnType<typeof createEngine> & {
  credentials: CredentialResolver;
  limits: VerificationLimits;
  /** Absent only in engines a caller supplies (benchmarks). */
  trustedRoots?: TufTrustedRoots;
};

export async function createPolicySource(
  cfg: AgentConfig,
  logger: SourceLogger,
  opts: { snapshotOnly?: boolean; keys?: KeyProviders } = {},
): Promise<PolicySource<CompiledPolicy>> {
  const source = await createSource(cfg, logger, opts);
  // Key Vault material is read through the providers; its changes recompile the policies.
  if (opts.keys) (source as unknown as StoreBackedSource<CompiledPolicy>).useKeyProviders(opts.keys);
  return source;
}

async function createSource(
  cfg: AgentConfig,
  logger: SourceLogger,
  opts: { snapshotOnly?: boolean },
): Promise<PolicySource<CompiledPolicy>> {
  const selection = {
    defaultPolicy: cfg.policy.defaultPolicy,
    exemptNamespaces: cfg.policy.exemptNamespaces,
    maxBreakGlassSeconds: cfg.policy.breakGlassMaxSeconds,
  };
  if (cfg.policy.source === "files") {
    return new FilePolicySource<CompiledPolicy>({ dir: cfg.policy.dir!, config: selection, logger });
  }
  const snapshot = snapshotOptions(cfg);
  if (opts.snapshotOnly) {
    // The pull verifier on the host: no API server credentials, only the agent's snapshot.
    if (!snapshot)
      throw new Error(
        "policy.snapshotPath is empty: no policy snapshot to decide from while the agent is away",
      );
    const { SnapshotPolicySource } = await import("../policy-source/snapshot-source.js");
    return new SnapshotPolicySource<CompiledPolicy>({ ...snapshot, config: selection, logger });
  }
  // Loaded only for this source: @kubernetes/client-node costs ~28 MB of agent RSS.
  const { createKubernetesPolicySource } = await import("../k8s/index.js");
  return createKubernetesPolicySource(selection, logger, cfg.policy.kubeconfig, snapshot);
}

function snapshotOptions(cfg: AgentConfig): { path: string; maxAgeMs: number } | undefined {
  if (cfg.policy.snapshotPath === "") return undefined;
  return { path: cfg.policy.snapshotPath, maxAgeMs: cfg.policy.snapshotMaxAgeSeconds * 1000 };
}

/**
 * Starts a source and, for one-shot users (the pull verifier's fallback, `tollgate verify`),
 * waits until it has synced: the Kubernetes source's start() returns before its first list.
 * The agent itself does not wait — until the sync its selections fail closed.
 */
export async function startSynced(source: PolicySource<CompiledPolicy>, timeoutMs: number): Promise<void> {
  await source.start();
  const k8s = source as Partial<Pick<KubernetesPolicySource<CompiledPolicy>, "whenReady">>;
  if (typeof k8s.whenReady === "function") await k8s.whenReady(Math.max(1, timeoutMs));
}

/** The agent's global bounds on verifications in flight, from its configuration. */
export function agentLimits(cfg: AgentConfig): VerificationLimits {
  return new VerificationLimits({
    maxConcurrent: cfg.verification.maxConcurrent,
    maxConcurrentPerRegistry: Math.min(
      cfg.verification.maxConcurrentPerRegistry,
      cfg.verification.maxConcurrent,
    ),
    maxBytes: cfg.verification.maxBytesInFlightMiB * 1024 * 1024,
    maxBytesPerRegistry: cfg.verification.maxBytesPerRegistryMiB * 1024 * 1024,
    maxQueued: cfg.verification.maxQueued,
    queueTimeoutMs: cfg.verification.timeoutMs,
  });
}

/**
 * `offline`: Sigstore trusted roots only from the agent's TUF cache, never a mirror (the pull
 * verifier's fallback must not reach out unexpectedly while the agent is away).
 */
export function createAgentEngine(
  cfg: AgentConfig,
  onRequest?: (ev: RequestEvent) => void,
  opts: { offline?: boolean; onTrustRefresh?: TufTrustedRootsOptions["onRefresh"] } = {},
): AgentEngine {
  const credentials = buildCredentialResolver(cfg.registry.credentialProviders, cfg.registry.dockerConfigs);
  const limits = agentLimits(cfg);
  const trustedRoots = new TufTrustedRoots({
    cacheDir: cfg.sigstore.tufCacheDir,
    offline: opts.offline ?? false,
    limits: { fetchTimeoutMs: cfg.sigstore.tufFetchTimeoutMs },
    ...(opts.onTrustRefresh ? { onRefresh: opts.onTrustRefresh } : {}),
  });
  const engine = createEngine({
    registry: {
      hostsDir: cfg.registry.certsDir,
      dockerConfigFiles: cfg.registry.dockerConfigs,
      credentialResolver: credentials,
      ...(onRequest ? { onRequest } : {}),
    },
    cache: { maxEntries: cfg.verification.cacheMaxEntries },
    verificationTimeoutMs: cfg.verification.timeoutMs,
    limits,
    trustedRoots,
  });
  return Object.assign(engine, { credentials, limits, trustedRoots });
}

/** containerd's spelling of a name (engine/identity.ts), tolerant: an unparsable name is kept as given. */
export function normalizeName(name: string): string {
  try {
    return storedName(name);
  } catch {
    return name;
  }
}
