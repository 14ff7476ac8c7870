// Trust policy semantics (trust-store-trust-policy.md, as notation-go implements them):
// policy selection by registry scope, verification levels and overrides, trusted identities.
import { EngineError } from "../errors.js";
import type { NotationTrustPolicy, ValidationAction, ValidationType } from "./types.js";
import type { Cert } from "./x509.js";

export type Enforcement = Record<ValidationType, ValidationAction>;

const LEVELS: Record<string, Enforcement> = {
  strict: {
    integrity: "enforce",
    authenticity: "enforce",
    authenticTimestamp: "enforce",
    expiry: "enforce",
    revocation: "enforce",
  },
  permissive: {
    integrity: "enforce",
    authenticity: "enforce",
    authenticTimestamp: "log",
    expiry: "log",
    revocation: "log",
  },
  audit: {
    integrity: "enforce",
    authenticity: "log",
    authenticTimestamp: "log",
    expiry: "log",
    revocation: "log",
  },
  skip: {
    integrity: "skip",
    authenticity: "skip",
    authenticTimestamp: "skip",
    expiry: "skip",
    revocation: "skip",
  },
};

const TYPES: ValidationType[] = ["integrity", "authenticity", "authenticTimestamp", "expiry", "revocation"];

function invalid(policy: string, msg: string): EngineError {
  return new EngineError("INVALID_POLICY", `trust policy "${policy}": ${msg}`);
}

/** The effective action per check; rejects overrides the spec forbids. */
export function enforcement(policy: NotationTrustPolicy): Enforcement {
  const sv = policy.signatureVerification;
  const base = LEVELS[sv?.level];
  if (!base) throw invalid(policy.name, `unknown verification level ${JSON.stringify(sv?.level)}`);
  const out = { ...base };
  const override = sv.override ?? {};
  if (Object.keys(override).length > 0 && sv.level === "skip")
    throw invalid(policy.name, `level "skip" cannot be customized`);
  for (const [k, v] of Object.entries(override)) {
    if (!TYPES.includes(k as ValidationType))
      throw invalid(policy.name, `unknown override ${JSON.stringify(k)}`);
    if (v !== "enforce" && v !== "log" && v !== "skip")
      throw invalid(policy.name, `unknown action ${JSON.stringify(v)}`);
    if (k === "integrity") throw invalid(policy.name, `"integrity" cannot be overridden`);
    if (v === "skip" && k !== "revocation") throw invalid(policy.name, `"${k}" cannot be skipped`);
    out[k as ValidationType] = v;
  }
  return out;
}

/** Validates a whole policy set the way notation validates trustpolicy.json. */
export function validatePolicies(policies: NotationTrustPolicy[]): void {
  if (!Array.isArray(policies) || policies.length === 0)
    throw new EngineError("INVALID_POLICY", "trust policy document has no trust policies");
  const names = new Set<string>();
  const scopes = new Set<string>();
  let globals = 0;
  for (const p of policies) {
    if (typeof p.name !== "string" || p.name.trim() === "")
      throw new EngineError("INVALID_POLICY", "a trust policy has no name");
    if (names.has(p.name)) throw invalid(p.name, "duplicate policy name");
    names.add(p.name);
    enforcement(p);
    if (!Array.isArray(p.registryScopes) || p.registryScopes.length === 0)
      throw invalid(p.name, "no registryScopes");
    if (p.registryScopes.includes("*")) {
      if (p.registryScopes.length > 1) throw invalid(p.name, `the global scope "*" must be the only scope`);
      globals++;
    }
    for (const s of p.registryScopes) {
      if (s === "*") continue;
      if (s.includes("*")) throw invalid(p.name, `scope ${JSON.stringify(s)} must not contain "*"`);
      if (scopes.has(s))
        throw invalid(p.name, `registry scope ${JSON.stringify(s)} is used by more than one policy`);
      scopes.add(s);
    }
    if (p.signatureVerification.level === "skip") continue;
    if (!Array.isArray(p.trustStores) || p.trustStores.length === 0) throw invalid(p.name, "no trustStores");
    for (const ts of p.trustStores) {
      const [type, name] = splitStore(ts, p.name);
      if (!["ca", "signingAuthority", "tsa"].includes(type) || name === "")
        throw invalid(p.name, `bad trust store ${JSON.stringify(ts)}`);
    }
    if (!Array.isArray(p.trustedIdentities) || p.trustedIdentities.length === 0)
      throw invalid(p.name, "no trustedIdentities");
    if (p.trustedIdentities.includes("*") && p.trustedIdentities.length > 1)
      throw invalid(p.name, `"*" must be the only trusted identity`);
    for (const id of p.trustedIdentities) if (id !== "*") parseTrustedIdentity(id, p.name);
  }
  if (globals > 1)
    throw new EngineError("INVALID_POLICY", `only one trust policy may use the global scope "*"`);
}

export function splitStore(ts: string, policy: string): [string, string] {
  const i = ts.indexOf(":");
  if (i < 0) throw invalid(policy, `trust store ${JSON.stringify(ts)} must be <type>:<name>`);
  return [ts.slice(0, i), ts.slice(i + 1)];
}

/** The repository part of a reference: registry/namespace/repo, without tag or digest. */
export function repositoryOf(reference: string): string {
  let r = reference;
  const at = r.indexOf("@");
  if (at >= 0) r = r.slice(0, at);
  const slash = r.lastIndexOf("/");
  const colon = r.lastIndexOf(":");
  if (colon > slash) r = r.slice(0, colon);
  return r;
}

/** Exact scope match wins over the global "*" policy; none → undefined. */
export function selectPolicy(
  policies: NotationTrustPolicy[],
  reference: string,
): NotationTrustPolicy | undefined {
  const repo = repositoryOf(reference);
  let global: NotationTrustPolicy | undefined;
  for (const p of policies) {
    if (p.registryScopes.includes(repo)) return p;
    if (p.registryScopes.includes("*")) global = p;
  }
  return global;
}

// --- trusted identities ----------------------------------------------------------------

/** Parses an RFC 4514-like DN ("C=US, ST=WA, O=x") into type → value; S is an alias of ST. */
export function parseDn(dn: string, policy: string): Map<string, string> {
  if (dn.includes("=#"))
    throw invalid(policy, `identity ${JSON.stringify(dn)}: "=#" values are not supported`);
  const out = new Map<string, string>();
  const rdns: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < dn.length; i++) {
    const ch = dn[i]!;
    if (ch === "\\" && i + 1 < dn.length) {
      cur += ch + dn[++i];
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === "+" && !quoted)
      throw invalid(policy, `identity ${JSON.stringify(dn)}: multi-valued RDNs are not supported`);
    if ((ch === "," || ch === ";") && !quoted) {
      rdns.push(cur);
      cur = "";
      continue;
    }
    cur += ch;
  }
  if (quoted) throw invalid(policy, `identity ${JSON.stringify(dn)}: unbalanced quotes`);
  rdns.push(cur);
  for (const rdn of rdns) {
    const eq = rdn.indexOf("=");
    if (eq <= 0) throw invalid(policy, `identity ${JSON.stringify(dn)}: bad RDN ${JSON.stringify(rdn)}`);
    let type = rdn.slice(0, eq).trim().toUpperCase();
    if (type === "S") type = "ST";
    let value = rdn.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    value = value.replace(/\\([0-9a-fA-F]{2}|.)/g, (_, e: string) =>
      e.length === 2 ? String.fromCharCode(parseInt(e, 16)) : e,
    );
    if (out.has(type)) throw invalid(policy, `identity ${JSON.stringify(dn)}: duplicate ${type}`);
    out.set(type, value);
  }
  return out;
}

export function parseTrustedIdentity(id: string, policy: string): Map<string, string> | undefined {
  const i = id.indexOf(":");
  if (i < 0) throw invalid(policy, `trusted identity ${JSON.stringify(id)} has no "<type>:" prefix`);
  const prefix = id.slice(0, i);
  const value = id.slice(i + 1).trim();
  if (prefix !== "x509.subject") return undefined; // other identity types belong to plugins
  if (value === "") throw invalid(policy, `trusted identity ${JSON.stringify(id)} has no value`);
  const dn = parseDn(value, policy);
  for (const f of ["C", "ST", "O"])
    if (!dn.get(f))
      throw invalid(policy, `trusted identity ${JSON.stringify(id)} must contain C, ST (or S) and O`);
  return dn;
}

/** Returns undefined when the leaf matches a trusted identity, else the reason it does not. */
export function checkTrustedIdentity(policy: NotationTrustPolicy, leaf: Cert): string | undefined {
  if (policy.trustedIdentities.includes("*")) return undefined;
  const wanted = policy.trustedIdentities
    .map((id) => parseTrustedIdentity(id, policy.name))
    .filter((m): m is Map<string, string> => m !== undefined);
  if (wanted.length === 0)
    return `no x509 trusted identities are configured in trust policy "${policy.name}"`;
  const leafDn = new Map<string, string>();
  for (const rdn of leaf.subject) {
    if (rdn.length > 1) return `signing certificate subject "${leaf.subjectString}" has a multi-valued RDN`;
    const a = rdn[0]!;
    if (leafDn.has(a.type)) return `signing certificate subject "${leaf.subjectString}" repeats ${a.type}`;
    leafDn.set(a.type, a.value);
  }
  for (const w of wanted) {
    if ([...w].every(([k, v]) => leafDn.get(k) === v)) return undefined;
  }
  return `signing certificate subject "${leaf.subjectString}" does not match the trusted identities of trust policy "${policy.name}"`;
}
