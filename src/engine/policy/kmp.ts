// spec.keyManagementProviders[]: validation, and the check that every reference from a trust
// store or cosign key names a declared provider holding that kind of material. The shape is
// Ratify's KeyManagementProvider of type azurekeyvault (vaultURI, certificates[], keys[] with
// optional versions, tenantID/clientID, refreshInterval), so its users recognise it.

import {
  KEY_VAULT_NAME_RE,
  KEY_VAULT_VERSION_RE,
  parseAzureKmsUri,
  parseVaultUri,
} from "../keys/azurekms.js";
import { parseGoDuration } from "../../base/duration.js";
import { isRecord } from "../../base/record.js";
import type { PolicyIssue } from "./errors.js";
import {
  DEFAULTS,
  type KeyManagementProviderSpec,
  type KeyVaultObjectSpec,
  type VerifierSpec,
} from "./model.js";

const MAX_PROVIDERS = 16;
const MAX_OBJECTS = 64;
/** Refreshing more often than this only loads the vault (Key Vault throttles per vault). */
export const MIN_REFRESH_SECONDS = 10;
const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

type Obj = Record<string, unknown>;

function unknownFields(o: Obj, allowed: string[], path: string, issues: PolicyIssue[]): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k))
      issues.push({ path: `${path}.${k}`, message: `unknown field (allowed: ${allowed.join(", ")})` });
}

function objects(v: unknown, path: string, issues: PolicyIssue[]): KeyVaultObjectSpec[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > MAX_OBJECTS) {
    issues.push({ path, message: `must be a list of at most ${MAX_OBJECTS} {name, version?}` });
    return [];
  }
  const out: KeyVaultObjectSpec[] = [];
  for (const [i, e] of v.entries()) {
    const at = `${path}[${i}]`;
    if (!isRecord(e)) {
      issues.push({ path: at, message: "must be an object {name, version?}" });
      continue;
    }
    unknownFields(e, ["name", "version"], at, issues);
    if (typeof e.name !== "string" || !KEY_VAULT_NAME_RE.test(e.name)) {
      issues.push({ path: `${at}.name`, message: "required: 1-127 letters, digits and dashes" });
      continue;
    }
    if (
      e.version !== undefined &&
      e.version !== "" &&
      (typeof e.version !== "string" || !KEY_VAULT_VERSION_RE.test(e.version))
    ) {
      issues.push({
        path: `${at}.version`,
        message: "a Key Vault version is 32 hex characters (omit it for the latest)",
      });
      continue;
    }
    if (out.some((o) => o.name === e.name)) {
      issues.push({ path: `${at}.name`, message: `${e.name} is listed twice` });
      continue;
    }
    out.push({
      name: e.name,
      ...(typeof e.version === "string" && e.version !== "" ? { version: e.version } : {}),
    });
  }
  return out;
}

export function validateKeyManagementProviders(
  v: unknown,
  issues: PolicyIssue[],
): { providers: KeyManagementProviderSpec[]; declared: Map<string, number> } {
  const path = "spec.keyManagementProviders";
  if (v === undefined) return { providers: [], declared: new Map() };
  if (!Array.isArray(v) || v.length > MAX_PROVIDERS) {
    issues.push({ path, message: `must be a list of at most ${MAX_PROVIDERS} providers` });
    return { providers: [], declared: new Map() };
  }
  const out: KeyManagementProviderSpec[] = [];
  const seen = new Map<string, number>();
  for (const [i, p] of v.entries()) {
    const at = `${path}[${i}]`;
    if (!isRecord(p)) {
      issues.push({ path: at, message: "must be an object" });
      continue;
    }
    unknownFields(p, ["name", "refreshInterval", "azureKeyVault"], at, issues);
    const name = p.name;
    if (typeof name !== "string" || !NAME_RE.test(name) || name.length > 63) {
      issues.push({ path: `${at}.name`, message: "required: a lower-case DNS label" });
      continue;
    }
    if (seen.has(name)) {
      issues.push({ path: `${at}.name`, message: `duplicate provider ${name}` });
      continue;
    }
    seen.set(name, i);
    const before = issues.length;
    let refreshIntervalSeconds: number = DEFAULTS.keyRefreshIntervalSeconds;
    if (p.refreshInterval !== undefined) {
      const ms = typeof p.refreshInterval === "string" ? parseGoDuration(p.refreshInterval) : undefined;
      const seconds = ms === undefined ? undefined : Math.round(ms / 1000);
      if (ms === undefined || ms < 0)
        issues.push({
          path: `${at}.refreshInterval`,
          message:
            typeof p.refreshInterval === "string"
              ? `invalid duration ${JSON.stringify(p.refreshInterval)} (a duration such as 5m)`
              : "must be a duration such as 5m",
        });
      else if (seconds === undefined || seconds < MIN_REFRESH_SECONDS || seconds > 86_400)
        issues.push({
          path: `${at}.refreshInterval`,
          message: `must be between ${MIN_REFRESH_SECONDS}s and 24h`,
        });
      else refreshIntervalSeconds = seconds;
    }
    const kv = p.azureKeyVault;
    if (!isRecord(kv)) {
      issues.push({ path: `${at}.azureKeyVault`, message: "required (the only provider type today)" });
      continue;
    }
    const kat = `${at}.azureKeyVault`;
    unknownFields(kv, ["vaultURI", "tenantID", "clientID", "certificates", "keys"], kat, issues);
    const uri = typeof kv.vaultURI === "string" ? parseVaultUri(kv.vaultURI) : { error: "required" };
    if ("error" in uri) issues.push({ path: `${kat}.vaultURI`, message: uri.error });
    for (const k of ["tenantID", "clientID"] as const)
      if (
        kv[k] !== undefined &&
        (typeof kv[k] !== "string" || !/^[0-9a-zA-Z.-]{1,128}$/.test(kv[k] as string))
      )
        issues.push({ path: `${kat}.${k}`, message: "must be a GUID or domain name" });
    const certificates = objects(kv.certificates, `${kat}.certificates`, issues);
    const keys = objects(kv.keys, `${kat}.keys`, issues);
    if (kv.certificates === undefined && kv.keys === undefined)
      issues.push({ path: kat, message: "lists no certificates and no keys" });
    // An invalid provider is not returned: references to it report nothing more.
    if (issues.length > before || "error" in uri) continue;
    out.push({
      name,
      refreshIntervalSeconds,
      azureKeyVault: {
        vaultURI: uri.vaultURI,
        ...(typeof kv.tenantID === "string" ? { tenantID: kv.tenantID } : {}),
        ...(typeof kv.clientID === "string" ? { clientID: kv.clientID } : {}),
        certificates,
        keys,
      },
    });
  }
  return { providers: out, declared: seen };
}

/** Every keyManagementProvider reference names a declared provider with the right material. */
export function checkProviderReferences(
  { providers, declared }: { providers: KeyManagementProviderSpec[]; declared: Map<string, number> },
  verifiers: VerifierSpec[],
  issues: PolicyIssue[],
): void {
  const byName = new Map(providers.map((p) => [p.name, p]));
  const used = new Set<string>();
  const check = (ref: string | undefined, at: string, what: "certificates" | "keys") => {
    if (ref === undefined) return;
    used.add(ref);
    const p = byName.get(ref);
    if (!p) {
      // A declared but invalid provider already has its own issues.
      if (!declared.has(ref))
        issues.push({ path: at, message: `no spec.keyManagementProviders entry named ${ref}` });
    } else if (p.azureKeyVault[what].length === 0)
      issues.push({ path: at, message: `provider ${ref} lists no ${what}` });
  };
  verifiers.forEach((v, i) => {
    const path = `spec.verifiers[${i}]`;
    if (v.notation)
      v.notation.trustStores.forEach((s, j) => {
        check(
          s.certificates.keyManagementProvider,
          `${path}.notation.trustStores[${j}].keyManagementProvider`,
          "certificates",
        );
      });
    else
      v.cosign.keys?.forEach((k, j) => {
        check(k.pem.keyManagementProvider, `${path}.cosign.keys[${j}].keyManagementProvider`, "keys");
      });
  });
  providers.forEach((p) => {
    if (!used.has(p.name))
      issues.push({
        path: `spec.keyManagementProviders[${declared.get(p.name)}]`,
        message: `provider ${p.name} is not used by any trust store or cosign key`,
      });
  });
}

/** Checks an azurekms:// key URI (cosign keys' `kms`); returns a sentence when it is not one. */
export function checkKmsUri(text: string): string | undefined {
  const r = parseAzureKmsUri(text);
  return "error" in r ? r.error : undefined;
}

/** True when the policy reads material from a key service (only the agent can resolve it). */
export function usesKeyVault(spec: {
  keyManagementProviders?: unknown[];
  verifiers: VerifierSpec[];
}): boolean {
  return (
    (spec.keyManagementProviders?.length ?? 0) > 0 ||
    spec.verifiers.some((v) => v.cosign?.keys?.some((k) => k.pem.kms !== undefined))
  );
}
