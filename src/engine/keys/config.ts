// The agent configuration's `keyManagement` section: the node's Azure identity for Key Vault
// and how long stale material may serve. No secret values here: a client secret comes from a
// file (clientSecretFile) or the AZURE_CLIENT_SECRET environment variable.
import type { AzureCredentialConfig } from "../azure/credential.js";

export interface KeyManagementConfig {
  azure: {
    credential: Omit<AzureCredentialConfig, "clientSecret" | "agent">;
    /** Serving stale Key Vault material longer than this makes the agent not ready. */
    maxStaleSeconds: number;
    disableChallengeResourceVerification: boolean;
    /** Extra CA bundle (PEM file) for the vault and Entra endpoints (private endpoints, proxies). */
    caFile?: string;
  };
}

export const DEFAULT_KEY_MANAGEMENT: KeyManagementConfig = {
  azure: { credential: {}, maxStaleSeconds: 86_400, disableChallengeResourceVerification: false },
};

const STRINGS = [
  "tenantId",
  "clientId",
  "clientSecretFile",
  "federatedTokenFile",
  "authorityHost",
  "caFile",
] as const;
const BOOLS = [
  "disableInstanceDiscovery",
  "managedIdentity",
  "azureCli",
  "disableChallengeResourceVerification",
] as const;

/** Parses `keyManagement`; every problem is a "keyManagement.<path>: sentence". */
export function parseKeyManagementConfig(v: unknown): { config: KeyManagementConfig; problems: string[] } {
  const problems: string[] = [];
  const config: KeyManagementConfig = structuredClone(DEFAULT_KEY_MANAGEMENT);
  if (v === undefined || v === null) return { config, problems };
  const isObj = (x: unknown): x is Record<string, unknown> =>
    typeof x === "object" && x !== null && !Array.isArray(x);
  if (!isObj(v)) return { config, problems: ["keyManagement: must be a mapping"] };
  for (const k of Object.keys(v)) if (k !== "azure") problems.push(`keyManagement.${k}: unknown key`);
  const a = v.azure;
  if (a === undefined || a === null) return { config, problems };
  if (!isObj(a)) return { config, problems: [...problems, "keyManagement.azure: must be a mapping"] };
  const known: string[] = [...STRINGS, ...BOOLS, "maxStaleSeconds"];
  for (const k of Object.keys(a)) {
    if (k === "clientSecret")
      problems.push(
        "keyManagement.azure.clientSecret: not accepted in the file; use clientSecretFile or AZURE_CLIENT_SECRET",
      );
    else if (!known.includes(k)) problems.push(`keyManagement.azure.${k}: unknown key`);
  }
  const cred: Record<string, unknown> = {};
  for (const k of STRINGS) {
    if (a[k] === undefined) continue;
    if (typeof a[k] !== "string" || a[k] === "")
      problems.push(`keyManagement.azure.${k}: must be a non-empty string`);
    else if (k === "caFile") config.azure.caFile = a[k];
    else cred[k] = a[k];
  }
  for (const k of BOOLS) {
    if (a[k] === undefined) continue;
    if (typeof a[k] !== "boolean") problems.push(`keyManagement.azure.${k}: must be true or false`);
    else if (k === "disableChallengeResourceVerification")
      config.azure.disableChallengeResourceVerification = a[k];
    else cred[k] = a[k];
  }
  if (cred.authorityHost !== undefined && !/^https:\/\/[^/]+\/?$/.test(cred.authorityHost as string))
    problems.push("keyManagement.azure.authorityHost: must be https://<host>");
  if (a.maxStaleSeconds !== undefined) {
    const n = a.maxStaleSeconds;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 60 || n > 30 * 86_400)
      problems.push("keyManagement.azure.maxStaleSeconds: an integer from 60 to 2592000");
    else config.azure.maxStaleSeconds = n;
  }
  config.azure.credential = cred as KeyManagementConfig["azure"]["credential"];
  return { config, problems };
}
