// spec.attestations[] and spec.conditions: validation (exact paths; every CEL expression is
// compiled and type-checked here, so a typo is a policy error with line:column, never a
// surprise denial) and compilation into what the engine evaluates.
//
// Variables (docs/policy-guide.md "Attestations and conditions"):
//   in spec.attestations[].conditions:
//     predicate      dyn        the statement's predicate (JSON)
//     predicateType  string
//     signer         string     key name or certificate identity that signed it
//     image          {digest, reference, name, registry, repository, tag}
//     request        {namespace}  the pod's namespace ("" when the request has none); not a
//                    top-level `namespace`: that word is reserved in CEL (Kubernetes'
//                    ValidatingAdmissionPolicy has request.namespace too)
//     now            timestamp  the verification time
//   in spec.conditions (after every attestation requirement passed):
//     image, request, now       as above
//     signatures     list of {verifier, kind, signer, issuer, artifactDigest} (accepted ones)
//     attestations   {<name>: {predicateType, predicate, signer}} for every spec.attestations entry
// `request` and every `image` field but `digest` differ per request for one digest: a
// condition reading them is marked perRequest and evaluated per request (attest/index.ts).
import type { CompiledAttestationPolicy, CompiledConditionSpec } from "../attest/types.js";
import {
  type CelCheckType,
  compileCondition,
  formatIssue,
  isCelIssue,
  list,
  record,
  T,
} from "../cel/index.js";
import type { PolicyIssue } from "./errors.js";
import type { AttestationSpec, ConditionSpec, PolicySpec } from "./model.js";

/** cosign attest --type names → predicate type URIs. */
export const PREDICATE_ALIASES: Readonly<Record<string, string>> = {
  slsaprovenance: "https://slsa.dev/provenance/v0.2",
  slsaprovenance02: "https://slsa.dev/provenance/v0.2",
  slsaprovenance1: "https://slsa.dev/provenance/v1",
  spdx: "https://spdx.dev/Document",
  spdxjson: "https://spdx.dev/Document",
  cyclonedx: "https://cyclonedx.org/bom",
  vuln: "https://cosign.sigstore.dev/attestation/vuln/v1",
  link: "https://in-toto.io/Link/v1",
  custom: "https://cosign.sigstore.dev/attestation/v1",
};

const LIMITS = { attestations: 16, conditions: 32, messageChars: 512 };
const NAME_RE = /^[a-z][a-z0-9_]{0,62}$/;

const IMAGE = record("image", {
  digest: T.string,
  reference: T.string,
  name: T.string,
  registry: T.string,
  repository: T.string,
  tag: T.string,
});
const REQUEST = record("request", { namespace: T.string });

export function attestationConditionVars(): Record<string, CelCheckType> {
  return {
    predicate: T.dyn,
    predicateType: T.string,
    signer: T.string,
    image: IMAGE,
    request: REQUEST,
    now: T.timestamp,
  };
}

/** Whether a condition reading these paths depends on the request (not only on the digest). */
function readsRequest(reads: ReadonlySet<string>): boolean {
  for (const p of reads)
    if (p.startsWith("request") || (p.startsWith("image") && p !== "image.digest")) return true;
  return false;
}

function readsNamespace(reads: ReadonlySet<string>): boolean {
  return reads.has("request") || [...reads].some((p) => p.startsWith("request.namespace"));
}

export function policyConditionVars(names: string[]): Record<string, CelCheckType> {
  const one = record("attestation", { predicateType: T.string, predicate: T.dyn, signer: T.string });
  return {
    image: IMAGE,
    request: REQUEST,
    now: T.timestamp,
    signatures: list(
      record("signature", {
        verifier: T.string,
        kind: T.string,
        signer: T.string,
        issuer: T.string,
        artifactDigest: T.string,
      }),
    ),
    attestations: record("attestations", Object.fromEntries(names.map((n) => [n, one]))),
  };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

function unknownFields(o: Obj, path: string, allowed: string[], issues: PolicyIssue[]) {
  for (const k of Object.keys(o))
    if (!allowed.includes(k))
      issues.push({ path: `${path}.${k}`, message: `unknown field (allowed: ${allowed.join(", ")})` });
}

function conditions(
  v: unknown,
  path: string,
  vars: Record<string, CelCheckType>,
  issues: PolicyIssue[],
): ConditionSpec[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    issues.push({ path, message: "must be a list of {expression, message}" });
    return [];
  }
  if (v.length > LIMITS.conditions) issues.push({ path, message: `at most ${LIMITS.conditions} conditions` });
  const out: ConditionSpec[] = [];
  v.slice(0, LIMITS.conditions).forEach((c, i) => {
    const p = `${path}[${i}]`;
    if (!isObj(c)) {
      issues.push({ path: p, message: "must be an object with expression (and optional message)" });
      return;
    }
    unknownFields(c, p, ["expression", "message"], issues);
    if (typeof c.expression !== "string") {
      issues.push({ path: `${p}.expression`, message: "is required and must be a string" });
      return;
    }
    if (
      c.message !== undefined &&
      (typeof c.message !== "string" || c.message.length > LIMITS.messageChars || /[\r\n]/.test(c.message))
    ) {
      issues.push({
        path: `${p}.message`,
        message: `must be one line of at most ${LIMITS.messageChars} characters`,
      });
      return;
    }
    const compiled = compileCondition(c.expression, vars);
    if (isCelIssue(compiled)) {
      // `namespace` is a reserved word in CEL: say where the namespace is.
      const hint =
        /reserved identifier/.test(compiled.message) && /(^|[^.\w])namespace\b/.test(c.expression)
          ? " (namespace is reserved in CEL: the pod's namespace is request.namespace)"
          : "";
      issues.push({
        path: `${p}.expression`,
        message: `${formatIssue(compiled)}${hint} in ${JSON.stringify(c.expression.length > 200 ? `${c.expression.slice(0, 200)}…` : c.expression)}`,
      });
      return;
    }
    out.push({ expression: c.expression, ...(typeof c.message === "string" ? { message: c.message } : {}) });
  });
  return out;
}

/** Validates spec.attestations and spec.conditions; `cosignVerifiers` are the names of cosign verifiers. */
export function validateAttestationSpecs(
  spec: Obj,
  cosignVerifiers: ReadonlySet<string>,
  otherVerifiers: ReadonlySet<string>,
): { attestations?: AttestationSpec[]; conditions?: ConditionSpec[]; issues: PolicyIssue[] } {
  const issues: PolicyIssue[] = [];
  const atts: AttestationSpec[] = [];
  const raw = spec.attestations;
  if (raw !== undefined && !Array.isArray(raw))
    issues.push({ path: "spec.attestations", message: "must be a list" });
  const list_ = Array.isArray(raw) ? raw : [];
  if (list_.length > LIMITS.attestations)
    issues.push({ path: "spec.attestations", message: `at most ${LIMITS.attestations} attestations` });
  const seen = new Set<string>();
  list_.slice(0, LIMITS.attestations).forEach((a, i) => {
    const p = `spec.attestations[${i}]`;
    if (!isObj(a)) {
      issues.push({ path: p, message: "must be an object" });
      return;
    }
    unknownFields(a, p, ["name", "predicateType", "verifier", "conditions"], issues);
    const before = issues.length;
    if (typeof a.name !== "string" || !NAME_RE.test(a.name))
      issues.push({
        path: `${p}.name`,
        message: "must be a CEL identifier: lower-case letter, then letters, digits or _ (≤ 63)",
      });
    else if (seen.has(a.name))
      issues.push({ path: `${p}.name`, message: `duplicate attestation name "${a.name}"` });
    else seen.add(a.name);
    let predicateType: string | undefined;
    if (typeof a.predicateType !== "string" || a.predicateType === "")
      issues.push({
        path: `${p}.predicateType`,
        message: "is required (a URI or one of " + Object.keys(PREDICATE_ALIASES).join(", ") + ")",
      });
    else if (PREDICATE_ALIASES[a.predicateType]) predicateType = PREDICATE_ALIASES[a.predicateType];
    else if (/^[a-z][a-z0-9+.-]*:\S+$/i.test(a.predicateType) && a.predicateType.length <= 512)
      predicateType = a.predicateType;
    else
      issues.push({
        path: `${p}.predicateType`,
        message: `"${a.predicateType.slice(0, 80)}" is neither a URI nor one of ${Object.keys(PREDICATE_ALIASES).join(", ")}`,
      });
    if (typeof a.verifier !== "string")
      issues.push({
        path: `${p}.verifier`,
        message: "is required: the name of a cosign verifier in spec.verifiers",
      });
    else if (!cosignVerifiers.has(a.verifier))
      issues.push({
        path: `${p}.verifier`,
        message: otherVerifiers.has(a.verifier)
          ? `verifier "${a.verifier}" is not a cosign verifier (attestations are DSSE envelopes signed with cosign)`
          : `no verifier named "${a.verifier}" in spec.verifiers`,
      });
    const conds = conditions(a.conditions, `${p}.conditions`, attestationConditionVars(), issues);
    if (
      issues.length === before &&
      typeof a.name === "string" &&
      predicateType &&
      typeof a.verifier === "string"
    )
      atts.push({ name: a.name, predicateType, verifier: a.verifier, conditions: conds });
  });
  const conds = conditions(spec.conditions, "spec.conditions", policyConditionVars([...seen]), issues);
  return {
    ...(raw !== undefined ? { attestations: atts } : {}),
    ...(spec.conditions !== undefined ? { conditions: conds } : {}),
    issues,
  };
}

function compileAll(
  conds: ConditionSpec[],
  path: string,
  vars: Record<string, CelCheckType>,
): CompiledConditionSpec[] {
  return conds.map((c, i) => {
    const condition = compileCondition(c.expression, vars);
    // Validation already compiled it; failing now would be an engine bug.
    if (isCelIssue(condition)) throw new Error(`${path}[${i}]: ${formatIssue(condition)}`);
    return {
      path: `${path}[${i}]`,
      expression: c.expression,
      ...(c.message ? { message: c.message } : {}),
      condition,
      perRequest: readsRequest(condition.reads),
      readsNamespace: readsNamespace(condition.reads),
    };
  });
}

export function compileAttestationPolicy(spec: PolicySpec): CompiledAttestationPolicy | undefined {
  const atts = spec.attestations ?? [];
  const conds = spec.conditions ?? [];
  if (atts.length === 0 && conds.length === 0) return undefined;
  const attestations = atts.map((a, i) => ({
    name: a.name,
    predicateType: a.predicateType,
    verifier: a.verifier,
    conditions: compileAll(a.conditions, `spec.attestations[${i}].conditions`, attestationConditionVars()),
  }));
  const conditions = compileAll(conds, "spec.conditions", policyConditionVars(atts.map((a) => a.name)));
  const all = [...attestations.flatMap((a) => a.conditions), ...conditions];
  return {
    attestations,
    conditions,
    perRequest: all.some((c) => c.perRequest),
    readsNamespace: all.some((c) => c.readsNamespace),
    usesNow: all.some((c) => c.condition.usesNow),
  };
}
