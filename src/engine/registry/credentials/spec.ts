// The `registry.credentialProviders` section of the agent configuration, validated into
// specs with every problem reported by path. Kept free of the providers themselves (and
// their imports): the pull verifier parses the agent configuration on every pull.
import { errorMessage } from "../../../base/errors.js";
import {
  AZURE_CREDENTIAL_KEYS,
  type AzureCredentialSpec,
  parseAzureCredentialSpec,
} from "../../azure/spec.js";
import { parseHostPattern } from "./host-pattern.js";

/** Plugin limits unless a provider sets its own. */
export const DEFAULT_PLUGIN_LIMITS = { timeoutMs: 10_000, maxOutputBytes: 1024 * 1024 };

export interface CommonSpec {
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
  | (CommonSpec & { type: "azure"; credential: AzureCredentialSpec; scope?: string })
  | (CommonSpec & { type: "anonymous" });

export const PROVIDER_TYPES = ["dockerConfig", "kubelet", "azure", "anonymous"] as const;

const COMMON_KEYS = ["name", "type", "hosts", "timeoutMs", "maxOutputBytes", "negativeCacheSeconds"];
const TYPE_KEYS: Record<string, string[]> = {
  dockerConfig: ["files", "helperDirs", "cacheSeconds"],
  kubelet: ["config", "binDir"],
  azure: [...AZURE_CREDENTIAL_KEYS, "scope"],
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
        problems.push(`${p}.hosts: ${errorMessage(e)}`);
      }
    }
    const common: CommonSpec = {
      name,
      ...(hosts ? { hosts } : {}),
      timeoutMs: num("timeoutMs", DEFAULT_PLUGIN_LIMITS.timeoutMs, 100, 120_000),
      maxOutputBytes: num("maxOutputBytes", DEFAULT_PLUGIN_LIMITS.maxOutputBytes, 1024, 16 * 1024 * 1024),
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
    } else if (type === "azure") {
      // The Entra token (audience: every ACR) goes to the hosts this provider serves: only
      // to registries the operator named, never to "every other host".
      if (hosts === undefined && o.hosts === undefined)
        problems.push(
          `${p}.hosts: required for an azure provider (it sends Microsoft Entra tokens): list the registries, e.g. "*.azurecr.io"`,
        );
      const credential = parseAzureCredentialSpec(o, p, problems);
      credential.timeoutMs = common.timeoutMs;
      const scope = o.scope === undefined ? undefined : str("scope");
      specs.push({ ...common, type, credential, ...(scope ? { scope } : {}) });
    } else specs.push({ ...common, type: "anonymous" });
  }
  return { specs, problems };
}
