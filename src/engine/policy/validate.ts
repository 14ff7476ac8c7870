// Structural validation and normalisation of an ImagePolicy document. Synchronous and
// side-effect free: references to Secrets/ConfigMaps are checked for shape only (compile.ts
// resolves them). Every problem is collected with its exact path; unknown fields are errors
// because a misspelt field silently falling back to a default could widen access.

import { errorMessage } from "../../base/errors.js";
import { parseTrustPolicyDocument } from "../notation/policy.js";
import { validateAttestationSpecs } from "./attest.js";
import { type PolicyIssue, PolicyValidationError } from "./errors.js";
import {
  API_VERSION,
  type CacheSpec,
  type CosignIdentitySpec,
  type CosignKeylessSpec,
  type CosignKeySpec,
  type CosignVerifierSpec,
  DEFAULTS,
  KIND,
  MAX_TTL_SECONDS,
  type MaterialSource,
  type NotationAction,
  type NotationCheckName,
  type NotationDocumentVerifierSpec,
  type NotationTrustStoreSpec,
  type NotationVerifierSpec,
  type ObjectKeyRef,
  type ParsedPolicy,
  type PolicySpec,
  type RegoSpec,
  type VerifierSpec,
} from "./model.js";
import { checkPattern } from "./patterns.js";
import { parseCertificateBundle, parsePublicKeyPem } from "./pem.js";

const LIMITS = {
  patterns: 1024,
  verifiers: 32,
  trustStores: 32,
  keys: 64,
  identities: 64,
  pemChars: 1 << 20,
  regoBase64Chars: 22 << 20,
  dataChars: 1 << 20,
};

const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const NOTATION_CHECKS: NotationCheckName[] = [
  "integrity",
  "authenticity",
  "authenticTimestamp",
  "expiry",
  "revocation",
];

type Obj = Record<string, unknown>;

class Ctx {
  readonly issues: PolicyIssue[] = [];
  add(path: string, message: string): void {
    this.issues.push({ path, message });
  }
}

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

function obj(ctx: Ctx, v: unknown, path: string, allowed: readonly string[]): Obj | undefined {
  if (!isObj(v)) {
    ctx.add(path, `must be an object, got ${describe(v)}`);
    return undefined;
  }
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) ctx.add(`${path}.${k}`, `unknown field (allowed: ${allowed.join(", ")})`);
  }
  return v;
}

function str(ctx: Ctx, o: Obj, key: string, path: string, required: boolean): string | undefined {
  const v = o[key];
  if (v === undefined) {
    if (required) ctx.add(`${path}.${key}`, "required");
    return undefined;
  }
  if (typeof v !== "string") {
    ctx.add(`${path}.${key}`, `must be a string, got ${describe(v)}`);
    return undefined;
  }
  if (required && v.length === 0) {
    ctx.add(`${path}.${key}`, "must not be empty");
    return undefined;
  }
  return v;
}

function oneOf<T extends string>(
  ctx: Ctx,
  o: Obj,
  key: string,
  path: string,
  values: readonly T[],
  dflt: T | undefined,
): T | undefined {
  const v = o[key];
  if (v === undefined) {
    if (dflt === undefined) ctx.add(`${path}.${key}`, `required (one of ${values.join(", ")})`);
    return dflt;
  }
  if (typeof v !== "string" || !values.includes(v as T)) {
    ctx.add(`${path}.${key}`, `must be one of ${values.join(", ")}, got ${JSON.stringify(v)}`);
    return undefined;
  }
  return v as T;
}

function bool(ctx: Ctx, o: Obj, key: string, path: string, dflt: boolean): boolean {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") {
    ctx.add(`${path}.${key}`, `must be a boolean, got ${describe(v)}`);
    return dflt;
  }
  return v;
}

function arr(ctx: Ctx, o: Obj, key: string, path: string, max: number): unknown[] | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) {
    ctx.add(`${path}.${key}`, `must be a list, got ${describe(v)}`);
    return undefined;
  }
  if (v.length > max) {
    ctx.add(`${path}.${key}`, `at most ${max} entries allowed, got ${v.length}`);
    return undefined;
  }
  return v;
}

function patterns(ctx: Ctx, o: Obj, key: string, path: string): string[] | undefined {
  const list = arr(ctx, o, key, path, LIMITS.patterns);
  if (list === undefined) return undefined;
  const out: string[] = [];
  for (const [i, p] of list.entries()) {
    const at = `${path}.${key}[${i}]`;
    if (typeof p !== "string") {
      ctx.add(at, `must be a string, got ${describe(p)}`);
      continue;
    }
    const why = checkPattern(p);
    if (why) ctx.add(at, why);
    else out.push(p);
  }
  return out;
}

function objectKeyRef(ctx: Ctx, v: unknown, path: string): ObjectKeyRef | undefined {
  const o = obj(ctx, v, path, ["name", "namespace", "key"]);
  if (!o) return undefined;
  const name = str(ctx, o, "name", path, true);
  const namespace = str(ctx, o, "namespace", path, true);
  const key = str(ctx, o, "key", path, true);
  if (name === undefined || namespace === undefined || key === undefined) return undefined;
  return { name, namespace, key };
}

/**
 * Exactly one of: inline field `inlineKey`, `secretRef`, `configMapRef`. `check` validates
 * inline text (the same check runs on resolved bytes in compile.ts).
 */
function material(
  ctx: Ctx,
  o: Obj,
  path: string,
  inlineKey: string,
  check: ((text: string) => string | undefined) | undefined,
  maxChars: number,
): MaterialSource | undefined {
  const present = [inlineKey, "secretRef", "configMapRef"].filter((k) => o[k] !== undefined);
  if (present.length !== 1) {
    ctx.add(
      path,
      present.length === 0
        ? `one of ${inlineKey}, secretRef, configMapRef is required`
        : `only one of ${present.join(", ")} may be set`,
    );
    return undefined;
  }
  if (o.secretRef !== undefined) {
    const r = objectKeyRef(ctx, o.secretRef, `${path}.secretRef`);
    return r && { secretRef: r };
  }
  if (o.configMapRef !== undefined) {
    const r = objectKeyRef(ctx, o.configMapRef, `${path}.configMapRef`);
    return r && { configMapRef: r };
  }
  const text = o[inlineKey];
  if (typeof text !== "string") {
    ctx.add(`${path}.${inlineKey}`, `must be a string, got ${describe(text)}`);
    return undefined;
  }
  if (text.length > maxChars) {
    ctx.add(`${path}.${inlineKey}`, `longer than ${maxChars} characters`);
    return undefined;
  }
  const why = check?.(text);
  if (why) {
    ctx.add(`${path}.${inlineKey}`, why);
    return undefined;
  }
  return { inline: text };
}

export const checkCertificates = (text: string): string | undefined => {
  const r = parseCertificateBundle(text);
  return "error" in r ? r.error : undefined;
};

export const checkPublicKey = (text: string): string | undefined => {
  const r = parsePublicKeyPem(text);
  return "error" in r ? r.error : undefined;
};

export const checkTrustedRoot = (text: string): string | undefined => {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return `not valid JSON (${errorMessage(e)})`;
  }
  if (!isObj(v)) return "a sigstore trusted root must be a JSON object";
  const mt = v.mediaType;
  if (typeof mt !== "string" || !mt.startsWith("application/vnd.dev.sigstore.trustedroot"))
    return 'not a sigstore trusted root (mediaType must be "application/vnd.dev.sigstore.trustedroot…")';
  return undefined;
};

export const checkWasmBase64 = (text: string): string | undefined => {
  const compact = text.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) return "not valid base64";
  const bytes = Buffer.from(compact, "base64");
  if (bytes.length < 8 || bytes.readUInt32BE(0) !== 0x0061736d)
    return "not a WebAssembly module (no \\0asm magic)";
  return undefined;
};

export const checkNotationTrustPolicy = (text: string): string | undefined => {
  try {
    parseTrustPolicyDocument(JSON.parse(text));
    return undefined;
  } catch (e) {
    return e instanceof SyntaxError ? `not valid JSON (${e.message})` : errorMessage(e);
  }
};

function notation(
  ctx: Ctx,
  v: unknown,
  path: string,
): NotationVerifierSpec | NotationDocumentVerifierSpec | undefined {
  const o = obj(ctx, v, path, ["level", "override", "trustedIdentities", "trustStores", "trustPolicy"]);
  if (!o) return undefined;
  if (o.trustPolicy !== undefined) return notationDocument(ctx, o, path);
  const level =
    o.level === "skip"
      ? undefined
      : oneOf(ctx, o, "level", path, ["strict", "permissive", "audit"], "strict");
  if (o.level === "skip")
    ctx.add(`${path}.level`, 'level "skip" verifies nothing and is not allowed in an ImagePolicy');

  let override: NotationVerifierSpec["override"];
  if (o.override !== undefined) {
    const ov = obj(ctx, o.override, `${path}.override`, NOTATION_CHECKS);
    if (ov) {
      override = {};
      for (const check of NOTATION_CHECKS) {
        if (ov[check] === undefined) continue;
        if (check === "integrity") {
          ctx.add(`${path}.override.integrity`, "integrity cannot be overridden");
          continue;
        }
        const a = oneOf<NotationAction>(
          ctx,
          ov,
          check,
          `${path}.override`,
          ["enforce", "log", "skip"],
          undefined,
        );
        if (a) override[check] = a;
      }
    }
  }

  const ids = arr(ctx, o, "trustedIdentities", path, LIMITS.identities);
  const trustedIdentities: string[] = [];
  if (ids === undefined || ids.length === 0) {
    if (o.trustedIdentities === undefined || ids?.length === 0)
      ctx.add(`${path}.trustedIdentities`, 'required: "*" or "x509.subject: <DN>" entries');
  } else {
    for (const [i, id] of ids.entries()) {
      const at = `${path}.trustedIdentities[${i}]`;
      if (typeof id !== "string") ctx.add(at, `must be a string, got ${describe(id)}`);
      else if (id === "*" && ids.length > 1) ctx.add(at, '"*" must be the only trusted identity');
      else if (id !== "*" && !/^x509\.subject:\s*\S/.test(id))
        ctx.add(at, 'must be "*" or "x509.subject: <distinguished name>"');
      else trustedIdentities.push(id);
    }
  }

  const trustStores = notationStores(ctx, o, path, NAME_RE, "must be a lower-case DNS-style name");
  if (!level) return undefined;
  return { level, ...(override ? { override } : {}), trustedIdentities, trustStores };
}

/** `trustPolicy`: a verbatim trustpolicy.json (object or JSON text) or a Secret/ConfigMap reference. */
function notationDocument(ctx: Ctx, o: Obj, path: string): NotationDocumentVerifierSpec | undefined {
  for (const k of ["level", "override", "trustedIdentities"])
    if (o[k] !== undefined)
      ctx.add(`${path}.${k}`, "not allowed with trustPolicy (the trust policy document decides it)");
  const tp = o.trustPolicy;
  let trustPolicy: MaterialSource | undefined;
  if (isObj(tp) && (tp.configMapRef !== undefined || tp.secretRef !== undefined)) {
    const ro = obj(ctx, tp, `${path}.trustPolicy`, ["configMapRef", "secretRef"]);
    if (ro) trustPolicy = material(ctx, ro, `${path}.trustPolicy`, "inline", undefined, 0);
  } else {
    const text = typeof tp === "string" ? tp : JSON.stringify(tp);
    trustPolicy = material(
      ctx,
      { trustPolicy: text },
      path,
      "trustPolicy",
      checkNotationTrustPolicy,
      LIMITS.pemChars,
    );
  }
  const trustStores = notationStores(
    ctx,
    o,
    path,
    NOTATION_STORE_NAME_RE,
    "must match [a-zA-Z0-9_.-]+",
    false,
  );
  return trustPolicy ? { trustPolicy, trustStores } : undefined;
}

const NOTATION_STORE_NAME_RE = /^[a-zA-Z0-9_.-]{1,253}$/;

function notationStores(ctx: Ctx, o: Obj, path: string, nameRe: RegExp, nameRule: string, required = true) {
  const stores = arr(ctx, o, "trustStores", path, LIMITS.trustStores);
  const trustStores: NotationTrustStoreSpec[] = [];
  if (stores === undefined || stores.length === 0) {
    if (required && (o.trustStores === undefined || stores?.length === 0))
      ctx.add(`${path}.trustStores`, "at least one trust store is required");
  } else {
    const seen = new Set<string>();
    stores.forEach((s, i) => {
      const at = `${path}.trustStores[${i}]`;
      const so = obj(ctx, s, at, ["type", "name", "certificates", "secretRef", "configMapRef"]);
      if (!so) return;
      const type = oneOf(ctx, so, "type", at, ["ca", "signingAuthority", "tsa"] as const, "ca");
      const name = str(ctx, so, "name", at, true);
      if (name !== undefined && !nameRe.test(name)) ctx.add(`${at}.name`, nameRule);
      if (type && name) {
        if (seen.has(`${type}:${name}`)) ctx.add(`${at}.name`, `duplicate trust store ${type}:${name}`);
        seen.add(`${type}:${name}`);
      }
      // certificates may be a list of PEM strings; normalise to one bundle.
      const so2: Obj = { ...so };
      if (Array.isArray(so.certificates)) {
        if (!so.certificates.every((c) => typeof c === "string")) {
          ctx.add(`${at}.certificates`, "must be a PEM string or a list of PEM strings");
          return;
        }
        so2.certificates = (so.certificates as string[]).join("\n");
      }
      const certificates = material(ctx, so2, at, "certificates", checkCertificates, LIMITS.pemChars);
      if (type && name && certificates) trustStores.push({ type, name, certificates });
    });
  }
  return trustStores;
}

function regexpField(ctx: Ctx, o: Obj, key: string, path: string): string | undefined {
  const v = str(ctx, o, key, path, false);
  if (v === undefined) return undefined;
  try {
    new RegExp(v);
  } catch (e) {
    ctx.add(`${path}.${key}`, `not a valid regular expression (${errorMessage(e)})`);
    return undefined;
  }
  return v;
}

function cosign(ctx: Ctx, v: unknown, path: string): CosignVerifierSpec | undefined {
  const o = obj(ctx, v, path, ["keys", "keyless", "annotations"]);
  if (!o) return undefined;
  const out: CosignVerifierSpec = {};
  const keys = arr(ctx, o, "keys", path, LIMITS.keys);
  if (keys !== undefined) {
    const list: CosignKeySpec[] = [];
    keys.forEach((k, i) => {
      const at = `${path}.keys[${i}]`;
      const ko = obj(ctx, k, at, ["name", "pem", "secretRef", "configMapRef"]);
      if (!ko) return;
      const name = str(ctx, ko, "name", at, false);
      const pem = material(ctx, ko, at, "pem", checkPublicKey, LIMITS.pemChars);
      if (pem) list.push({ ...(name !== undefined ? { name } : {}), pem });
    });
    if (keys.length === 0) ctx.add(`${path}.keys`, "must not be empty when given");
    out.keys = list;
  }
  if (o.keyless !== undefined) {
    const at = `${path}.keyless`;
    const ko = obj(ctx, o.keyless, at, ["trustedRoot", "identities", "requireTlog", "requireSct"]);
    if (ko) {
      let trustedRoot: MaterialSource | undefined;
      const tr = ko.trustedRoot;
      if (tr === undefined) ctx.add(`${at}.trustedRoot`, "required (inline JSON or configMapRef)");
      else if (isObj(tr) && (tr.configMapRef !== undefined || tr.secretRef !== undefined)) {
        const ro = obj(ctx, tr, `${at}.trustedRoot`, ["configMapRef", "secretRef"]);
        if (ro) trustedRoot = material(ctx, ro, `${at}.trustedRoot`, "inline", undefined, 0);
      } else {
        const text = typeof tr === "string" ? tr : JSON.stringify(tr);
        trustedRoot = material(
          ctx,
          { trustedRoot: text },
          at,
          "trustedRoot",
          checkTrustedRoot,
          LIMITS.pemChars,
        );
      }
      const ids = arr(ctx, ko, "identities", at, LIMITS.identities);
      const identities: CosignIdentitySpec[] = [];
      if (ids === undefined || ids.length === 0) {
        if (ko.identities === undefined || ids?.length === 0)
          ctx.add(
            `${at}.identities`,
            "at least one identity is required (keyless without identities trusts anyone)",
          );
      } else {
        ids.forEach((id, i) => {
          const ip = `${at}.identities[${i}]`;
          const io = obj(ctx, id, ip, ["issuer", "issuerRegExp", "subject", "subjectRegExp"]);
          if (!io) return;
          const e: CosignIdentitySpec = {};
          const issuer = str(ctx, io, "issuer", ip, false);
          const issuerRegExp = regexpField(ctx, io, "issuerRegExp", ip);
          const subject = str(ctx, io, "subject", ip, false);
          const subjectRegExp = regexpField(ctx, io, "subjectRegExp", ip);
          if (
            issuer === undefined &&
            issuerRegExp === undefined &&
            io.issuer === undefined &&
            io.issuerRegExp === undefined
          )
            ctx.add(ip, "one of issuer, issuerRegExp is required");
          if (
            subject === undefined &&
            subjectRegExp === undefined &&
            io.subject === undefined &&
            io.subjectRegExp === undefined
          )
            ctx.add(ip, "one of subject, subjectRegExp is required");
          if (issuer !== undefined) e.issuer = issuer;
          if (issuerRegExp !== undefined) e.issuerRegExp = issuerRegExp;
          if (subject !== undefined) e.subject = subject;
          if (subjectRegExp !== undefined) e.subjectRegExp = subjectRegExp;
          identities.push(e);
        });
      }
      const requireTlog = bool(ctx, ko, "requireTlog", at, true);
      const requireSct = bool(ctx, ko, "requireSct", at, true);
      if (trustedRoot) {
        const keyless: CosignKeylessSpec = { trustedRoot, identities, requireTlog, requireSct };
        out.keyless = keyless;
      }
    }
  }
  if (o.annotations !== undefined) {
    const ao = isObj(o.annotations) ? o.annotations : undefined;
    if (!ao) ctx.add(`${path}.annotations`, `must be a map of strings, got ${describe(o.annotations)}`);
    else {
      const annotations: Record<string, string> = {};
      for (const [k, val] of Object.entries(ao)) {
        if (typeof val !== "string")
          ctx.add(`${path}.annotations.${k}`, `must be a string, got ${describe(val)}`);
        else annotations[k] = val;
      }
      out.annotations = annotations;
    }
  }
  if (o.keys === undefined && o.keyless === undefined) ctx.add(path, "one of keys, keyless is required");
  return out;
}

function verifiers(ctx: Ctx, spec: Obj): VerifierSpec[] {
  const list = arr(ctx, spec, "verifiers", "spec", LIMITS.verifiers);
  if (list === undefined || list.length === 0) {
    if (spec.verifiers === undefined || list?.length === 0)
      ctx.add("spec.verifiers", "at least one verifier is required");
    return [];
  }
  const out: VerifierSpec[] = [];
  const names = new Set<string>();
  list.forEach((v, i) => {
    const path = `spec.verifiers[${i}]`;
    const o = obj(ctx, v, path, ["name", "notation", "cosign"]);
    if (!o) return;
    const name = str(ctx, o, "name", path, true);
    if (name !== undefined) {
      if (!NAME_RE.test(name) || name.length > 63)
        ctx.add(`${path}.name`, "must be a lower-case DNS-style name of at most 63 characters");
      if (names.has(name)) ctx.add(`${path}.name`, `duplicate verifier name "${name}"`);
      names.add(name);
    }
    const kinds = ["notation", "cosign"].filter((k) => o[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.add(
        path,
        kinds.length === 0
          ? "one of notation, cosign is required"
          : "only one of notation, cosign may be set",
      );
      return;
    }
    if (o.notation !== undefined) {
      const n = notation(ctx, o.notation, `${path}.notation`);
      if (n && name) out.push({ name, notation: n });
    } else {
      const c = cosign(ctx, o.cosign, `${path}.cosign`);
      if (c && name) out.push({ name, cosign: c });
    }
  });
  return out;
}

function rego(ctx: Ctx, v: unknown): RegoSpec | undefined {
  const path = "spec.rego";
  const o = obj(ctx, v, path, ["module", "entrypoint", "data"]);
  if (!o) return undefined;
  const entrypoint = str(ctx, o, "entrypoint", path, true);
  let module: MaterialSource | undefined;
  const m = o.module;
  if (m === undefined) ctx.add(`${path}.module`, "required (base64 .wasm, or secretRef/configMapRef)");
  else if (typeof m === "string")
    module = material(ctx, o, path, "module", checkWasmBase64, LIMITS.regoBase64Chars);
  else {
    const mo = obj(ctx, m, `${path}.module`, ["secretRef", "configMapRef"]);
    if (mo) module = material(ctx, mo, `${path}.module`, "wasm", undefined, 0);
  }
  let data: unknown;
  if (o.data !== undefined) {
    const text = JSON.stringify(o.data);
    if (text === undefined || text.length > LIMITS.dataChars)
      ctx.add(`${path}.data`, "must be JSON of at most 1 MiB");
    else data = JSON.parse(text);
  }
  if (!module || !entrypoint) return undefined;
  return { module, entrypoint, ...(data !== undefined ? { data } : {}) };
}

function ttl(ctx: Ctx, o: Obj, key: string, dflt: number): number {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > MAX_TTL_SECONDS) {
    ctx.add(
      `spec.cache.${key}`,
      `must be an integer between 0 and ${MAX_TTL_SECONDS}, got ${JSON.stringify(v)}`,
    );
    return dflt;
  }
  return v;
}

/** Validates and normalises; returns every issue found (empty = valid). */
export function validatePolicy(
  doc: unknown,
): { ok: true; policy: ParsedPolicy } | { ok: false; name: string | undefined; issues: PolicyIssue[] } {
  const ctx = new Ctx();
  let name: string | undefined;
  const root = isObj(doc) ? doc : undefined;
  if (!root) {
    ctx.add("(document)", `must be an object, got ${describe(doc)}`);
    return { ok: false, name, issues: ctx.issues };
  }
  if (root.apiVersion !== API_VERSION)
    ctx.add("apiVersion", `must be "${API_VERSION}", got ${JSON.stringify(root.apiVersion)}`);
  if (root.kind !== KIND) ctx.add("kind", `must be "${KIND}", got ${JSON.stringify(root.kind)}`);
  if (!isObj(root.metadata)) ctx.add("metadata", `must be an object, got ${describe(root.metadata)}`);
  else {
    name = str(ctx, root.metadata, "name", "metadata", true);
    if (name !== undefined && (!NAME_RE.test(name) || name.length > 253))
      ctx.add("metadata.name", "must be a lower-case DNS subdomain name");
    if (root.metadata.namespace !== undefined)
      ctx.add("metadata.namespace", "ImagePolicy is cluster-scoped and has no namespace");
  }
  const spec = obj(ctx, root.spec, "spec", [
    "images",
    "unmatchedImages",
    "exemptImages",
    "verifiers",
    "match",
    "rego",
    "attestations",
    "conditions",
    "mode",
    "failurePolicy",
    "cache",
  ]);
  if (!spec) return { ok: false, name, issues: ctx.issues };

  const images = patterns(ctx, spec, "images", "spec") ?? [...DEFAULTS.images];
  if (
    spec.images !== undefined &&
    images.length === 0 &&
    Array.isArray(spec.images) &&
    spec.images.length === 0
  )
    ctx.add("spec.images", "must not be empty (omit it to govern every image)");
  const exemptImages = patterns(ctx, spec, "exemptImages", "spec") ?? [];
  const unmatchedImages = oneOf(
    ctx,
    spec,
    "unmatchedImages",
    "spec",
    ["Allow", "Deny"] as const,
    DEFAULTS.unmatchedImages,
  );
  const match = oneOf(ctx, spec, "match", "spec", ["AnyOf", "AllOf"] as const, DEFAULTS.match);
  const mode = oneOf(ctx, spec, "mode", "spec", ["Enforce", "Audit"] as const, DEFAULTS.mode);
  const failurePolicy = oneOf(
    ctx,
    spec,
    "failurePolicy",
    "spec",
    ["Closed", "Open"] as const,
    DEFAULTS.failurePolicy,
  );
  const vs = verifiers(ctx, spec);
  const regoSpec = spec.rego === undefined ? undefined : rego(ctx, spec.rego);
  const att = validateAttestationSpecs(
    spec,
    new Set(vs.filter((v) => v.cosign).map((v) => v.name)),
    new Set(vs.map((v) => v.name)),
  );
  for (const i of att.issues) ctx.add(i.path, i.message);
  let cache: CacheSpec = {
    positiveTTLSeconds: DEFAULTS.positiveTTLSeconds,
    negativeTTLSeconds: DEFAULTS.negativeTTLSeconds,
  };
  if (spec.cache !== undefined) {
    const co = obj(ctx, spec.cache, "spec.cache", ["positiveTTLSeconds", "negativeTTLSeconds"]);
    if (co)
      cache = {
        positiveTTLSeconds: ttl(ctx, co, "positiveTTLSeconds", DEFAULTS.positiveTTLSeconds),
        negativeTTLSeconds: ttl(ctx, co, "negativeTTLSeconds", DEFAULTS.negativeTTLSeconds),
      };
  }
  if (ctx.issues.length > 0 || !name || !unmatchedImages || !match || !mode || !failurePolicy) {
    return { ok: false, name, issues: ctx.issues };
  }
  const out: PolicySpec = {
    images,
    unmatchedImages,
    exemptImages,
    verifiers: vs,
    match,
    ...(regoSpec ? { rego: regoSpec } : {}),
    ...(att.attestations ? { attestations: att.attestations } : {}),
    ...(att.conditions ? { conditions: att.conditions } : {}),
    mode,
    failurePolicy,
    cache,
  };
  return { ok: true, policy: { name, spec: out } };
}

/** validatePolicy that throws PolicyValidationError (EngineError code INVALID_POLICY). */
export function parsePolicy(doc: unknown): ParsedPolicy {
  const r = validatePolicy(doc);
  if (!r.ok) throw new PolicyValidationError(r.name, r.issues);
  return r.policy;
}
