// The agent configuration's `keyManagement` section: the node's Azure identity for Key Vault
// (the same credential keys as an azure registry credential provider: sources, tenant/client
// ids, authority host, CA files…) and how long stale material may serve. No secret values in
// the file: a service principal's secret or certificate comes from the AZURE_* environment
// variables (from a Secret), as for the registry provider.
import { isRecord } from "../../base/record.js";
import { AZURE_CREDENTIAL_KEYS, type AzureCredentialSpec, parseAzureCredentialSpec } from "../azure/spec.js";

export interface KeyManagementConfig {
  azure: {
    credential: AzureCredentialSpec;
    /** Serving stale Key Vault material longer than this makes the agent not ready. */
    maxStaleSeconds: number;
    disableChallengeResourceVerification: boolean;
  };
}

export function defaultKeyManagement(): KeyManagementConfig {
  return {
    azure: {
      credential: parseAzureCredentialSpec({}, "keyManagement.azure", []),
      maxStaleSeconds: 86_400,
      disableChallengeResourceVerification: false,
    },
  };
}

export const DEFAULT_KEY_MANAGEMENT: KeyManagementConfig = defaultKeyManagement();

/** Parses `keyManagement`; every problem is a "keyManagement.<path>: sentence". */
export function parseKeyManagementConfig(v: unknown): { config: KeyManagementConfig; problems: string[] } {
  const problems: string[] = [];
  const config = defaultKeyManagement();
  if (v === undefined || v === null) return { config, problems };
  if (!isRecord(v)) return { config, problems: ["keyManagement: must be a mapping"] };
  for (const k of Object.keys(v)) if (k !== "azure") problems.push(`keyManagement.${k}: unknown key`);
  const a = v.azure;
  if (a === undefined || a === null) return { config, problems };
  if (!isRecord(a)) return { config, problems: [...problems, "keyManagement.azure: must be a mapping"] };
  const known = [...AZURE_CREDENTIAL_KEYS, "maxStaleSeconds", "disableChallengeResourceVerification"];
  for (const k of Object.keys(a)) {
    if (k === "clientSecret" || k === "clientSecretFile")
      problems.push(
        `keyManagement.azure.${k}: not accepted; give the secret in AZURE_CLIENT_SECRET (or a certificate in AZURE_CLIENT_CERTIFICATE_PATH) from a Secret`,
      );
    else if (!known.includes(k)) problems.push(`keyManagement.azure.${k}: unknown key`);
  }
  config.azure.credential = parseAzureCredentialSpec(a, "keyManagement.azure", problems);
  const d = a.disableChallengeResourceVerification;
  if (d !== undefined) {
    if (typeof d !== "boolean")
      problems.push("keyManagement.azure.disableChallengeResourceVerification: must be true or false");
    else config.azure.disableChallengeResourceVerification = d;
  }
  if (a.maxStaleSeconds !== undefined) {
    const n = a.maxStaleSeconds;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 60 || n > 30 * 86_400)
      problems.push("keyManagement.azure.maxStaleSeconds: an integer from 60 to 2592000");
    else config.azure.maxStaleSeconds = n;
  }
  return { config, problems };
}
