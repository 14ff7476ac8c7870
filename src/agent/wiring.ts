// Builds the policy source and the engine from the agent configuration. Shared by the
// agent process and the pull verifier's in-process fallback (same file, same answers).
import { createEngine } from "../engine/index.js";
import { normalizeReference } from "../engine/reference.js";
import type { RequestEvent } from "../engine/registry/client.js";
import { FilePolicySource } from "../policy-source/files.js";
import type { CompiledPolicy, PolicySource, SourceLogger } from "../policy-source/types.js";
import type { AgentConfig } from "./config.js";

export type AgentEngine = ReturnType<typeof createEngine>;

export function createPolicySource(cfg: AgentConfig, logger: SourceLogger): PolicySource<CompiledPolicy> {
  const selection = {
    defaultPolicy: cfg.policy.defaultPolicy,
    exemptNamespaces: cfg.policy.exemptNamespaces,
    maxBreakGlassSeconds: cfg.policy.breakGlassMaxSeconds,
  };
  if (cfg.policy.source === "files") {
    return new FilePolicySource<CompiledPolicy>({ dir: cfg.policy.dir!, config: selection, logger });
  }
  // The Kubernetes source (src/k8s) is wired by the CLI once it exists.
  throw new Error(`policy source "${cfg.policy.source}" is not available in this build`);
}

export function createAgentEngine(cfg: AgentConfig, onRequest?: (ev: RequestEvent) => void): AgentEngine {
  return createEngine({
    registry: {
      hostsDir: cfg.registry.certsDir,
      dockerConfigFiles: cfg.registry.dockerConfigs,
      ...(onRequest ? { onRequest } : {}),
    },
    cache: { maxEntries: cfg.verification.cacheMaxEntries },
    verificationTimeoutMs: cfg.verification.timeoutMs,
  });
}

/** The engine's reference normalisation, tolerant: an unparsable name is kept as given. */
export function normalizeName(name: string): string {
  try {
    return normalizeReference(name);
  } catch {
    return name;
  }
}
