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
  const base =
    typeof sv?.level === "string" && Object.hasOwn(LEVELS, sv.level) ? LEVELS[sv.level] : undefined;
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

const STORE_NAME_RE = /^[a-zA-Z0-9_.-]+$/;
// notation-go adapts these from distribution's reference grammar (validateRegistryScopeFormat).
const DOMAIN_RE =
  /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?$/;
const REPOSITORY_RE =
  /^[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:(?:\/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$/;

/** Undefined when `scope` is a valid registry scope ("host[:port]/repository"), else why not. */
export function registryScopeProblem(scope: string): string | undefined {
  const hint =
    "make sure it is a fully qualified repository without the scheme, protocol or tag, e.g. registry.example.com/my/repository";
  if (scope.length > 1 && scope.includes("*"))
    return `registry scope ${JSON.stringify(scope)} with wild card(s) is not valid, ${hint}`;
  const slash = scope.indexOf("/");
  const domain = slash < 0 ? "" : scope.slice(0, slash);
  const repo = slash < 0 ? "" : scope.slice(slash + 1);
  if (!domain || !repo || !DOMAIN_RE.test(domain) || !REPOSITORY_RE.test(repo))
    return `registry scope ${JSON.stringify(scope)} is not valid, ${hint}`;
  return undefined;
}

/**
 * Validates a whole policy set with the rules notation-go applies to trustpolicy.json
 * (Document.Validate): names, level and overrides, verifyTimestamp, skip without stores or
 * identities, trust store references, trusted identities (no overlaps), registry scopes.
 */
export function validatePolicies(policies: NotationTrustPolicy[]): void {
  if (!Array.isArray(policies) || policies.length === 0)
    throw new EngineError("INVALID_POLICY", "trust policy document has no trust policies");
  const names = new Set<string>();
  for (const p of policies) {
    if (typeof p.name !== "string" || p.name === "")
      throw new EngineError("INVALID_POLICY", "a trust policy statement has no name");
    if (names.has(p.name)) throw invalid(p.name, "duplicate policy name (names must be unique)");
    names.add(p.name);
    enforcement(p);
    const vt = p.signatureVerification.verifyTimestamp;
    if (vt !== undefined && vt !== "always" && vt !== "afterCertExpiry")
      throw invalid(
        p.name,
        `verifyTimestamp must be "always" or "afterCertExpiry", got ${JSON.stringify(vt)}`,
      );
    const stores = p.trustStores ?? [];
    const ids = p.trustedIdentities ?? [];
    if (p.signatureVerification.level === "skip") {
      if (stores.length > 0 || ids.length > 0)
        throw invalid(p.name, `level "skip" must not name trust stores or trusted identities`);
      continue;
    }
    if (stores.length === 0 || ids.length === 0)
      throw invalid(p.name, "both trustStores and trustedIdentities are required");
    for (const ts of stores) {
      const [type, name] = splitStore(ts, p.name);
      if (!["ca", "signingAuthority", "tsa"].includes(type))
        throw invalid(
          p.name,
          `unsupported trust store type ${JSON.stringify(type)} in ${JSON.stringify(ts)}`,
        );
      if (!STORE_NAME_RE.test(name))
        throw invalid(p.name, `trust store name ${JSON.stringify(name)} must match [a-zA-Z0-9_.-]+`);
    }
    if (ids.includes("*") && ids.length > 1) throw invalid(p.name, `"*" must be the only trusted identity`);
    const dns: [string, Map<string, string>][] = [];
    for (const id of ids) {
      if (id === "") throw invalid(p.name, "empty trusted identity");
      if (id === "*") continue;
      const dn = parseTrustedIdentity(id, p.name);
      if (dn) dns.push([id, dn]);
    }
    for (const [i, [a, da]] of dns.entries())
      for (const [j, [b, db]] of dns.entries())
        if (i !== j && [...da].every(([k, v]) => db.get(k) === v))
          throw invalid(
            p.name,
            `overlapping trusted identities: ${JSON.stringify(a)} overlaps with ${JSON.stringify(b)}`,
          );
  }
  const seen = new Map<string, string>();
  for (const p of policies) {
    if (!Array.isArray(p.registryScopes) || p.registryScopes.length === 0)
      throw invalid(p.name, "no registryScopes");
    if (p.registryScopes.includes("*") && p.registryScopes.length > 1)
      throw invalid(p.name, `the global scope "*" must be the only scope`);
    for (const s of p.registryScopes) {
      if (typeof s !== "string") throw invalid(p.name, "registry scopes must be strings");
      if (s !== "*") {
        const why = registryScopeProblem(s);
        if (why) throw invalid(p.name, why);
      }
      if (seen.has(s))
        throw new EngineError(
          "INVALID_POLICY",
          s === "*"
            ? `only one trust policy may use the global scope "*" (used by "${seen.get(s)}" and "${p.name}")`
            : `registry scope ${JSON.stringify(s)} is used by more than one trust policy ("${seen.get(s)}" and "${p.name}")`,
        );
      seen.set(s, p.name);
    }
  }
}

/**
 * A trustpolicy.json document (version 1.0) → its validated trust policies. Like Go's
 * encoding/json in notation, unknown fields are ignored; wrongly typed ones are malformed.
 */
export function parseTrustPolicyDocument(doc: unknown): NotationTrustPolicy[] {
  const bad = (msg: string) => new EngineError("INVALID_POLICY", `trust policy document: ${msg}`);
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw bad("must be a JSON object");
  const d = doc as Record<string, unknown>;
  if (d.version === undefined || d.version === "") throw bad('has no version (expected "1.0")');
  if (d.version !== "1.0") throw bad(`unsupported version ${JSON.stringify(d.version)} (expected "1.0")`);
  if (!Array.isArray(d.trustPolicies) || d.trustPolicies.length === 0)
    throw bad("has no trust policy statements");
  const strings = (v: unknown, what: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
      throw bad(`${what} must be a list of strings`);
    return v as string[];
  };
  const policies = d.trustPolicies.map((raw: unknown, i: number): NotationTrustPolicy => {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw))
      throw bad(`trustPolicies[${i}] must be an object`);
    const p = raw as Record<string, unknown>;
    const sv = (p.signatureVerification ?? {}) as Record<string, unknown>;
    if (typeof sv !== "object" || Array.isArray(sv))
      throw bad(`trustPolicies[${i}].signatureVerification must be an object`);
    if (p.name !== undefined && typeof p.name !== "string")
      throw bad(`trustPolicies[${i}].name must be a string`);
    if (sv.level !== undefined && typeof sv.level !== "string")
      throw bad(`trustPolicies[${i}].signatureVerification.level must be a string`);
    if (sv.verifyTimestamp !== undefined && typeof sv.verifyTimestamp !== "string")
      throw bad(`trustPolicies[${i}].signatureVerification.verifyTimestamp must be a string`);
    if (
      sv.override !== undefined &&
      sv.override !== null &&
      (typeof sv.override !== "object" || Array.isArray(sv.override))
    )
      throw bad(`trustPolicies[${i}].signatureVerification.override must be an object`);
    return {
      name: (p.name as string | undefined) ?? "",
      registryScopes: strings(p.registryScopes, `trustPolicies[${i}].registryScopes`),
      signatureVerification: {
        level: (sv.level ?? "") as NotationTrustPolicy["signatureVerification"]["level"],
        ...(sv.override
          ? { override: sv.override as NotationTrustPolicy["signatureVerification"]["override"] }
          : {}),
        ...(sv.verifyTimestamp
          ? { verifyTimestamp: sv.verifyTimestamp as "always" | "afterCertExpiry" }
          : {}),
      },
      trustStores: strings(p.trustStores, `trustPolicies[${i}].trustStores`),
      trustedIdentities: strings(p.trustedIdentities, `trustPolicies[${i}].trustedIdentities`),
    };
  });
  validatePolicies(policies);
  return policies;
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
