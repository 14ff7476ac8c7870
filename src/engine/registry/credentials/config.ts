// Builds the CredentialResolver from validated `registry.credentialProviders` specs. The
// legacy `registry.dockerConfigs` list becomes the last, catch-all rule so existing
// configurations keep working unchanged.
import { EngineError } from "../../errors.js";
import { AzureProvider } from "./azure.js";
import { DockerConfigProvider } from "./docker.js";
import { DEFAULT_EXEC_LIMITS } from "./exec.js";
import { type HostPattern, parseHostPattern } from "./host-pattern.js";
import { KubeletProvider } from "./kubelet.js";
import { CredentialResolver, type ProviderRule } from "./resolver.js";
import type { CredentialProviderSpec } from "./spec.js";

/**
 * Builds the resolver: the specs in order, then (when given) the legacy docker config files
 * as the catch-all. Throws INVALID_CONFIG for ordering problems or unreadable provider files.
 */
export function buildCredentialResolver(
  specs: readonly CredentialProviderSpec[],
  legacyDockerConfigs: readonly string[] = [],
  now: () => number = Date.now,
): CredentialResolver {
  const rules: ProviderRule[] = specs.map((s) => {
    const hosts: HostPattern[] | undefined = s.hosts?.map(parseHostPattern);
    const limits = { timeoutMs: s.timeoutMs, maxOutputBytes: s.maxOutputBytes };
    const provider =
      s.type === "dockerConfig"
        ? new DockerConfigProvider({
            name: s.name,
            files: s.files,
            ...(s.helperDirs ? { helperDirs: s.helperDirs } : {}),
            cacheMs: s.cacheSeconds * 1000,
            ...limits,
          })
        : s.type === "kubelet"
          ? new KubeletProvider({ name: s.name, config: s.config, binDir: s.binDir, ...limits })
          : s.type === "azure"
            ? new AzureProvider({
                name: s.name,
                credential: s.credential,
                ...(s.scope ? { scope: s.scope } : {}),
                timeoutMs: s.timeoutMs,
                now,
              })
            : {
                name: s.name,
                type: "anonymous",
                get: async () => ({ credential: undefined, ttlMs: 0, scope: "global" as const }),
              };
    return { provider, hosts, negativeTtlMs: s.negativeCacheSeconds * 1000 };
  });
  if (legacyDockerConfigs.length > 0 && !rules.some((r) => r.hosts === undefined)) {
    if (rules.some((r) => r.provider.name === "dockerConfigs"))
      throw new EngineError(
        "INVALID_CONFIG",
        `registry credential providers: the name dockerConfigs is reserved`,
      );
    rules.push({
      provider: new DockerConfigProvider({
        name: "dockerConfigs",
        files: legacyDockerConfigs,
        cacheMs: 60_000,
        ...DEFAULT_EXEC_LIMITS,
      }),
      hosts: undefined,
      negativeTtlMs: 10_000,
    });
  }
  return new CredentialResolver(rules, now);
}
