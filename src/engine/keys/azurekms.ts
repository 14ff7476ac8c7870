// azurekms:// key URIs, written the way cosign users write them for Azure Key Vault keys:
//   azurekms://<vault host>/<key name>[/<key version>]
// e.g. azurekms://release.vault.azure.net/cosign or azurekms://release.vault.azure.net/cosign/3f1c…
// The host is the vault's DNS name (a port is allowed, for private endpoints and tests); the
// key is read over HTTPS from https://<host>.

/** Key Vault object names: 1–127 characters, letters, digits and dashes. */
export const KEY_VAULT_NAME_RE = /^[0-9a-zA-Z-]{1,127}$/;
/** Key Vault object versions: 32 hex characters. */
export const KEY_VAULT_VERSION_RE = /^[0-9a-fA-F]{32}$/;
const HOST_RE = /^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?(:\d{1,5})?$/;

export interface AzureKmsKey {
  vaultURI: string;
  name: string;
  version?: string;
}

/** Parses an azurekms:// URI; returns a sentence when it is not one. */
export function parseAzureKmsUri(uri: string): AzureKmsKey | { error: string } {
  const m = /^azurekms:\/\/([^/]+)\/([^/]+)(?:\/([^/]+))?\/?$/.exec(uri);
  if (!m) return { error: "must be azurekms://<vault host>/<key name>[/<version>]" };
  const [, host, name, version] = m as unknown as [string, string, string, string | undefined];
  if (!HOST_RE.test(host)) return { error: `${JSON.stringify(host)} is not a vault host name` };
  if (!KEY_VAULT_NAME_RE.test(name))
    return { error: `key name ${JSON.stringify(name)}: 1-127 letters, digits and dashes` };
  if (version !== undefined && !KEY_VAULT_VERSION_RE.test(version))
    return { error: `key version ${JSON.stringify(version)}: 32 hex characters` };
  return { vaultURI: `https://${host.toLowerCase()}`, name, ...(version ? { version } : {}) };
}

/** Normalises a vault URI to its origin (https only); returns a sentence when it is not usable. */
export function parseVaultUri(uri: string): { vaultURI: string } | { error: string } {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return { error: "not a URL (https://<vault>.vault.azure.net)" };
  }
  if (u.protocol !== "https:") return { error: "must be https://" };
  if (u.username || u.password || u.search || u.hash || (u.pathname !== "/" && u.pathname !== ""))
    return { error: "must be only https://<host>[:port] (no path, query or credentials)" };
  return { vaultURI: u.origin };
}
