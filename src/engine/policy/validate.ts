// Structural validation and normalisation of an ImagePolicy document. Synchronous and
// side-effect free: references to Secrets/ConfigMaps are checked for shape only (compile.ts
// resolves them). Every problem is collected with its exact path; unknown fields are errors
// because a misspelt field silently falling back to a default could widen access.
// Field readers are in fields.ts; each verifier kind is validated in validate-<kind>.ts.

import { validateAttestationSpecs } from "./attest.js";
import { type PolicyIssue, PolicyValidationError } from "./errors.js";
import {
  arr,
  Ctx,
  describe,
  isObj,
  LIMITS,
  material,
  NAME_RE,
  type Obj,
  obj,
  oneOf,
  patterns,
  str,
} from "./fields.js";
import { checkProviderReferences, validateKeyManagementProviders } from "./kmp.js";
import {
  API_VERSION,
  type CacheSpec,
  DEFAULTS,
  KIND,
  MAX_TTL_SECONDS,
  type MaterialSource,
  type ParsedPolicy,
  type PolicySpec,
  type RegoSpec,
  type VerifierSpec,
} from "./model.js";
import { validateCosign } from "./validate-cosign.js";
import { validateNotation } from "./validate-notation.js";

export { checkPublicKey, checkTrustedRoot } from "./validate-cosign.js";
export { checkCertificates, checkNotationTrustPolicy } from "./validate-notation.js";

export const checkWasmBase64 = (text: string): string | undefined => {
  const compact = text.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) return "not valid base64";
  const bytes = Buffer.from(compact, "base64");
  if (bytes.length < 8 || bytes.readUInt32BE(0) !== 0x0061736d)
    return "not a WebAssembly module (no \\0asm magic)";
  return undefined;
};

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
      const n = validateNotation(ctx, o.notation, `${path}.notation`);
      if (n && name) out.push({ name, notation: n });
    } else {
      const c = validateCosign(ctx, o.cosign, `${path}.cosign`);
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
    "keyManagementProviders",
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
  const kmps = validateKeyManagementProviders(spec.keyManagementProviders, ctx.issues);
  checkProviderReferences(kmps, vs, ctx.issues);
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
    ...(kmps.providers.length > 0 ? { keyManagementProviders: kmps.providers } : {}),
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
