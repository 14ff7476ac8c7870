// The `registry.credentialProviders` section of the agent configuration: validated into
// specs (every problem reported with its path) and built into a CredentialResolver. The
// legacy `registry.dockerConfigs` list becomes the last, catch-all rule so existing
// configurations keep working unchanged.
import { EngineError } from "../../errors.js";
import { DockerConfigProvider } from "./docker.js";
import { DEFAULT_EXEC_LIMITS } from "./exec.js";
import { type HostPattern, parseHostPattern } from "./host-pattern.js";
import { KubeletProvider } from "./kubelet.js";
import { CredentialResolver, type ProviderRule } from "./resolver.js";

interface CommonSpec {
  name: string;
  /** Undefined = every host not served by an earlier provider. */
  hosts?: string[];
  timeoutMs: number;
  maxOutputBytes: number;
  negativeCacheSeconds: number;
}

export type CredentialProviderSpec =
  | (CommonSpec & { type: "dockerConfig"; files: string[]; helperDirs?: string[]; cacheSeconds: number })
  | (CommonSpec & { type: "kubelet"; config: string; binDir: string })
  | (CommonSpec & { type: "anonymous" });

export const PROVIDER_TYPES = ["dockerConfig", "kubelet", "anonymous"] as const;

const COMMON_KEYS = ["name", "type", "hosts", "timeoutMs", "maxOutputBytes", "negativeCacheSeconds"];
const TYPE_KEYS: Record<string, string[]> = {
  dockerConfig: ["files", "helperDirs", "cacheSeconds"],
  kubelet: ["config", "binDir"],
  anonymous: [],
};

/** Validates the raw list; returns the specs and the problems (paths relative to the list). */
export function parseCredentialProviderSpecs(
  raw: unknown,
  at = "registry.credentialProviders",
): { specs: CredentialProviderSpec[]; problems: string[] } {
  const problems: string[] = [];
  const specs: CredentialProviderSpec[] = [];
  if (raw === undefined || raw === null) return { specs, problems };
  if (!Array.isArray(raw)) return { specs, problems: [`${at}: must be a list`] };
  for (const [i, item] of raw.entries()) {
    const p = `${at}[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      problems.push(`${p}: must be a mapping`);
      continue;
    }
    const o = item as Record<string, unknown>;
    const type = o.type;
    if (typeof type !== "string" || !(PROVIDER_TYPES as readonly string[]).includes(type)) {
      problems.push(`${p}.type: must be one of ${PROVIDER_TYPES.join(", ")}`);
      continue;
    }
    for (const k of Object.keys(o))
      if (!COMMON_KEYS.includes(k) && !TYPE_KEYS[type]!.includes(k))
        problems.push(`${p}.${k}: unknown key for type ${type}`);
    const str = (k: string): string | undefined => {
      const v = o[k];
      if (typeof v === "string" && v.trim() !== "") return v;
      problems.push(`${p}.${k}: must be a non-empty string`);
      return undefined;
    };
    const strList = (k: string, required: boolean): string[] | undefined => {
      const v = o[k];
      if (v === undefined || v === null) {
        if (required) problems.push(`${p}.${k}: required`);
        return undefined;
      }
      if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== "string" || x.trim() === "")) {
        problems.push(`${p}.${k}: must be a non-empty list of non-empty strings`);
        return undefined;
      }
      return v as string[];
    };
    const num = (k: string, def: number, min: number, max: number): number => {
      const v = o[k];
      if (v === undefined || v === null) return def;
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
        problems.push(`${p}.${k}: must be an integer between ${min} and ${max}`);
        return def;
      }
      return v;
    };
    const name = str("name") ?? `#${i}`;
    const hosts = strList("hosts", false);
    for (const h of hosts ?? []) {
      try {
        parseHostPattern(h);
      } catch (e) {
        problems.push(`${p}.hosts: ${(e as Error).message}`);
      }
    }
    const common: CommonSpec = {
      name,
      ...(hosts ? { hosts } : {}),
      timeoutMs: num("timeoutMs", DEFAULT_EXEC_LIMITS.timeoutMs, 100, 120_000),
      maxOutputBytes: num("maxOutputBytes", DEFAULT_EXEC_LIMITS.maxOutputBytes, 1024, 16 * 1024 * 1024),
      negativeCacheSeconds: num("negativeCacheSeconds", 10, 0, 3600),
    };
    if (type === "dockerConfig") {
      const files = strList("files", true) ?? [];
      const helperDirs = strList("helperDirs", false);
      specs.push({
        ...common,
        type,
        files,
        ...(helperDirs ? { helperDirs } : {}),
        cacheSeconds: num("cacheSeconds", 300, 0, 86_400),
      });
    } else if (type === "kubelet") {
      specs.push({ ...common, type, config: str("config") ?? "", binDir: str("binDir") ?? "" });
    } else specs.push({ ...common, type: "anonymous" });
  }
  return { specs, problems };
}

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
