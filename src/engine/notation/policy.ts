// Trust policy semantics (trust-store-trust-policy.md, as notation-go implements them):
// policy selection by registry scope, verification levels and overrides, trusted identities.
import { isRecord } from "../../base/record.js";
import { canonicalRepository } from "../identity.js";
import { EngineError } from "../errors.js";
import type {
  NotationTrustPolicy,
  ValidationAction,
  ValidationType,
  VerificationLevelName,
} from "./types.js";
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
 * A trustpolicy.json document (version 1.0) → its validated trust policies. Decoded the way
 * Go's encoding/json decodes it for notation: field names match case-insensitively, unknown
 * fields are ignored, null is the zero value, a wrongly typed value makes it malformed.
 */
export function parseTrustPolicyDocument(doc: unknown): NotationTrustPolicy[] {
  const malformed = (what: string) =>
    new EngineError("INVALID_POLICY", `malformed trust policy document: ${what}`);
  /** Go's field lookup: the exact key, else the first key equal under case folding. */
  const get = (o: Record<string, unknown>, key: string): unknown => {
    if (Object.hasOwn(o, key)) return o[key];
    const k = Object.keys(o).find((x) => x.toLowerCase() === key.toLowerCase());
    return k === undefined ? undefined : o[k];
  };
  const str = (v: unknown, what: string): string => {
    if (v === undefined || v === null) return "";
    if (typeof v !== "string") throw malformed(`${what} must be a string`);
    return v;
  };
  const strings = (v: unknown, what: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw malformed(`${what} must be a list of strings`);
    return v.map((x, i) => str(x, `${what}[${i}]`));
  };
  const object = (v: unknown, what: string): Record<string, unknown> => {
    if (v === undefined || v === null) return {};
    if (!isRecord(v)) throw malformed(`${what} must be an object`);
    return v;
  };
  const d = object(doc, "the document");
  const version = str(get(d, "version"), "version");
  const list = get(d, "trustPolicies");
  if (list !== undefined && list !== null && !Array.isArray(list))
    throw malformed("trustPolicies must be a list");
  const policies = ((list ?? []) as unknown[]).map((raw, i): NotationTrustPolicy => {
    const at = `trustPolicies[${i}]`;
    const p = object(raw, at);
    const sv = object(get(p, "signatureVerification"), `${at}.signatureVerification`);
    const ov = get(sv, "override");
    let override: Record<string, string> | undefined;
    if (ov !== undefined && ov !== null) {
      override = {};
      for (const [k, v] of Object.entries(object(ov, `${at}.signatureVerification.override`)))
        override[k] = str(v, `${at}.signatureVerification.override.${k}`);
    }
    const verifyTimestamp = str(get(sv, "verifyTimestamp"), `${at}.signatureVerification.verifyTimestamp`);
    return {
      name: str(get(p, "name"), `${at}.name`),
      registryScopes: strings(get(p, "registryScopes"), `${at}.registryScopes`),
      signatureVerification: {
        level: str(get(sv, "level"), `${at}.signatureVerification.level`) as VerificationLevelName,
        ...(override
          ? { override: override as NotationTrustPolicy["signatureVerification"]["override"] }
          : {}),
        ...(verifyTimestamp !== ""
          ? { verifyTimestamp: verifyTimestamp as "always" | "afterCertExpiry" }
          : {}),
      },
      trustStores: strings(get(p, "trustStores"), `${at}.trustStores`),
      trustedIdentities: strings(get(p, "trustedIdentities"), `${at}.trustedIdentities`),
    };
  });
  const bad = (msg: string) => new EngineError("INVALID_POLICY", `trust policy document: ${msg}`);
  if (version === "") throw bad('has no version (expected "1.0")');
  if (version !== "1.0") throw bad(`unsupported version ${JSON.stringify(version)} (expected "1.0")`);
  if (policies.length === 0) throw bad("has no trust policy statements");
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

/**
 * Exact scope match wins over the global "*" policy; none → undefined. Scopes and the
 * reference are compared as canonical repositories (engine/identity.ts: host case, `:443`,
 * Docker Hub's host names), because on a node the tenant chooses the spelling: a re-spelled
 * host must not fall through from a scoped trust policy to a laxer `*` one.
 */
export function selectPolicy(
  policies: NotationTrustPolicy[],
  reference: string,
): NotationTrustPolicy | undefined {
  const repo = canonicalRepository(reference) ?? repositoryOf(reference);
  let global: NotationTrustPolicy | undefined;
  for (const p of policies) {
    if (p.registryScopes.some((s) => s !== "*" && (canonicalRepository(s) ?? s) === repo)) return p;
    if (p.registryScopes.includes("*")) global = p;
  }
  return global;
}

// --- trusted identities ----------------------------------------------------------------

/** go-ldap's decodeString: trim spaces (keeping an escaped trailing one), undo \\c and \\hh escapes. */
function decodeDnString(raw: string): string | undefined {
  let t = raw.replace(/^ +| +$/g, "");
  if (t.endsWith("\\") && raw.endsWith(" ")) t += " ";
  const bytes: number[] = [];
  for (let i = 0; i < t.length; i++) {
    const ch = t[i]!;
    if (ch !== "\\") {
      const cp = t.codePointAt(i)!;
      if (cp > 0xffff) i++;
      bytes.push(...Buffer.from(String.fromCodePoint(cp), "utf8"));
      continue;
    }
    const next = t[i + 1];
    if (next === undefined) return undefined;
    if (' "#+,;<=>\\'.includes(next)) {
      bytes.push(next.charCodeAt(0));
      i++;
      continue;
    }
    const hex = t.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(bytes).toString("utf8");
}

/**
 * Parses a distinguished name as notation does (go-ldap v3.4.10 ParseDN, then notation's
 * rules): "," or ";" separate RDNs, "+" makes a multi-valued RDN (refused), attribute types
 * are case-sensitive ("S" is an alias of "ST"), no quoting, "=#" values are refused.
 */
export function parseDn(dn: string, policy: string): Map<string, string> {
  const fail = (why: string) => invalid(policy, `identity ${JSON.stringify(dn)}: ${why}`);
  if (dn.includes("=#")) throw fail('"=#" values are not supported');
  const rdns: { type: string; value: string }[][] = [];
  if (dn.trim() !== "") {
    let rdn: { type: string; value: string }[] = [];
    let type = "";
    let escaping = false;
    let start = 0;
    const setValue = (end: number) => {
      const v = decodeDnString(dn.slice(start, end));
      if (v === undefined) throw fail("bad escape sequence");
      rdn.push({ type, value: v });
      type = "";
    };
    for (let i = 0; i < dn.length; i++) {
      const ch = dn[i]!;
      if (escaping) escaping = false;
      else if (ch === "\\") escaping = true;
      else if (ch === "=" && type.length === 0) {
        const t = decodeDnString(dn.slice(start, i));
        if (t === undefined) throw fail("bad escape sequence");
        type = t;
        start = i + 1;
      } else if (ch === "," || ch === "+" || ch === ";") {
        if (type.length === 0) throw fail("incomplete type, value pair");
        setValue(i);
        start = i + 1;
        if (ch !== "+") {
          rdns.push(rdn);
          rdn = [];
        }
      }
    }
    if (type.length === 0) throw fail("DN ended with incomplete type, value pair");
    setValue(dn.length);
    rdns.push(rdn);
  }
  const out = new Map<string, string>();
  for (const rdn of rdns) {
    if (rdn.length > 1) throw fail("multi-valued RDNs are not supported");
    for (const a of rdn) {
      const type = a.type === "S" ? "ST" : a.type;
      if (out.get(type)) throw fail(`duplicate ${type}`);
      out.set(type, a.value);
    }
  }
  return out;
}

export function parseTrustedIdentity(id: string, policy: string): Map<string, string> | undefined {
  const i = id.indexOf(":");
  if (i < 0) throw invalid(policy, `trusted identity ${JSON.stringify(id)} has no "<type>:" prefix`);
  const prefix = id.slice(0, i);
  const value = id.slice(i + 1);
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
  const leafDn = leafSubjectDn(leaf);
  if (typeof leafDn === "string") return leafDn;
  for (const w of wanted) {
    if ([...w].every(([k, v]) => leafDn.get(k) === v)) return undefined;
  }
  return `signing certificate subject "${leaf.subjectString}" does not match the trusted identities of trust policy "${policy.name}"`;
}

// The attribute types Go's pkix.Name.String() names; any other type is printed as "oid=#hex",
// which notation's DN parser refuses, so such a leaf never matches an x509.subject identity.
const GO_NAMED_TYPES = new Set(["C", "O", "OU", "L", "ST", "STREET", "POSTALCODE", "SERIALNUMBER", "CN"]);

/** The leaf subject as notation sees it (Go's Name.String() re-parsed), or why it cannot be. */
function leafSubjectDn(leaf: Cert): Map<string, string> | string {
  const out = new Map<string, string>();
  const subj = `signing certificate subject "${leaf.subjectString}"`;
  for (const rdn of leaf.subject) {
    for (const a of rdn) {
      if (!GO_NAMED_TYPES.has(a.type)) return `${subj} has attribute ${a.type}, which notation cannot match`;
      // Go groups every value of one type into one multi-valued RDN.
      if (out.has(a.type)) return `${subj} has more than one ${a.type} (a multi-valued RDN to notation)`;
      out.set(a.type, a.value);
    }
  }
  for (const f of ["C", "ST", "O"])
    if (!out.get(f)) return `${subj} has no ${f}, so it matches no trusted identity`;
  return out;
}
