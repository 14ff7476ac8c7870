// The Azure credential part of a configuration (a registry credential provider, a key vault):
// which Microsoft Entra sources to try, in which order, and how to reach them. Validated
// here without loading @azure/identity: configurations are parsed where it is never used
// (the pull verifier parses the agent configuration on every pull).

/** The sources @azure/identity offers that make sense on a node (no browser or device code). */
export const AZURE_SOURCES = ["environment", "workloadIdentity", "managedIdentity", "azureCli"] as const;
export type AzureSource = (typeof AZURE_SOURCES)[number];

/** DefaultAzureCredential's order, without the developer-only sources. */
export const DEFAULT_AZURE_SOURCES: readonly AzureSource[] = AZURE_SOURCES;

export interface AzureCredentialSpec {
  /** Tried in this order; the first that is configured and answers wins. */
  sources: AzureSource[];
  /** Directory (tenant) id; default AZURE_TENANT_ID. */
  tenantId?: string;
  /** Application (client) id for environment and workload identity, or the user-assigned managed identity's client id. */
  clientId?: string;
  /** A user-assigned managed identity by ARM resource id (instead of clientId). */
  managedIdentityResourceId?: string;
  /** Microsoft Entra authority host; default AZURE_AUTHORITY_HOST, else the public cloud's. */
  authorityHost?: string;
  /** PEM files with extra CA certificates for the Entra and managed identity endpoints (proxies, private clouds). */
  caFiles?: string[];
  /** Workload identity's projected token file; default AZURE_FEDERATED_TOKEN_FILE. */
  federatedTokenFile?: string;
  /** Time limit for one source's answer (the az process, a managed identity request). */
  timeoutMs: number;
}

export const AZURE_CREDENTIAL_KEYS = [
  "sources",
  "tenantId",
  "clientId",
  "managedIdentityResourceId",
  "authorityHost",
  "caFiles",
  "federatedTokenFile",
  "timeoutMs",
];

const GUID_OR_DOMAIN = /^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$/;

/**
 * Validates the Azure credential keys of `o` (other keys are the caller's); problems are
 * pushed with `at` as their path prefix.
 */
export function parseAzureCredentialSpec(
  o: Record<string, unknown>,
  at: string,
  problems: string[],
): AzureCredentialSpec {
  const spec: AzureCredentialSpec = { sources: [...DEFAULT_AZURE_SOURCES], timeoutMs: 10_000 };
  if (o.sources !== undefined && o.sources !== null) {
    const v = o.sources;
    if (!Array.isArray(v) || v.length === 0)
      problems.push(`${at}.sources: must be a non-empty list of ${AZURE_SOURCES.join(", ")}`);
    else {
      const seen = new Set<string>();
      const out: AzureSource[] = [];
      for (const [i, s] of v.entries()) {
        if (typeof s !== "string" || !(AZURE_SOURCES as readonly string[]).includes(s))
          problems.push(`${at}.sources[${i}]: must be one of ${AZURE_SOURCES.join(", ")}`);
        else if (seen.has(s)) problems.push(`${at}.sources[${i}]: ${s} is listed twice`);
        else {
          seen.add(s);
          out.push(s as AzureSource);
        }
      }
      spec.sources = out;
    }
  }
  const optStr = (k: "tenantId" | "clientId" | "managedIdentityResourceId" | "federatedTokenFile") => {
    const v = o[k];
    if (v === undefined || v === null) return;
    if (typeof v !== "string" || v.trim() === "") problems.push(`${at}.${k}: must be a non-empty string`);
    else spec[k] = v;
  };
  optStr("tenantId");
  optStr("clientId");
  optStr("managedIdentityResourceId");
  optStr("federatedTokenFile");
  if (spec.tenantId !== undefined && !GUID_OR_DOMAIN.test(spec.tenantId))
    problems.push(`${at}.tenantId: must be a tenant id (a GUID) or a domain name`);
  if (spec.clientId !== undefined && spec.managedIdentityResourceId !== undefined)
    problems.push(`${at}: give clientId or managedIdentityResourceId for a managed identity, not both`);
  if (o.authorityHost !== undefined && o.authorityHost !== null) {
    const v = o.authorityHost;
    let ok = false;
    if (typeof v === "string") {
      try {
        const u = new URL(v);
        ok = u.protocol === "https:" && u.search === "" && u.hash === "" && u.username === "";
      } catch {
        ok = false;
      }
    }
    if (!ok) problems.push(`${at}.authorityHost: must be an https:// URL without query or credentials`);
    else spec.authorityHost = (v as string).replace(/\/+$/, "");
  }
  if (o.caFiles !== undefined && o.caFiles !== null) {
    const v = o.caFiles;
    if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== "string" || x.trim() === ""))
      problems.push(`${at}.caFiles: must be a non-empty list of file paths`);
    else spec.caFiles = v as string[];
  }
  if (o.timeoutMs !== undefined && o.timeoutMs !== null) {
    const v = o.timeoutMs;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 100 || v > 120_000)
      problems.push(`${at}.timeoutMs: must be an integer between 100 and 120000`);
    else spec.timeoutMs = v;
  }
  return spec;
}

/**
 * What a source lacks to be tried at all here (variables, configuration), or undefined when
 * it can be tried. Managed identity and the Azure CLI can only tell by being asked.
 */
export function sourceMissing(
  source: AzureSource,
  spec: AzureCredentialSpec,
  env: Record<string, string | undefined>,
): string | undefined {
  const tenantId = spec.tenantId ?? env.AZURE_TENANT_ID;
  const clientId = spec.clientId ?? env.AZURE_CLIENT_ID;
  if (
    source === "environment" &&
    (!tenantId || !clientId || (!env.AZURE_CLIENT_SECRET && !env.AZURE_CLIENT_CERTIFICATE_PATH))
  )
    return "needs a tenant and client id (AZURE_TENANT_ID, AZURE_CLIENT_ID or the configuration) and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH";
  if (
    source === "workloadIdentity" &&
    (!tenantId || !clientId || !(spec.federatedTokenFile ?? env.AZURE_FEDERATED_TOKEN_FILE))
  )
    return "needs a tenant id, a client id and a federated token file (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE or the configuration)";
  return undefined;
}
