// The attestation step of a verification: runs after the signature verifiers accepted the
// image. Discovers the subject's attestations and establishes, per spec.attestations entry,
// which envelopes are signed and name the digest (evidence, digest-bound); then evaluates
// the entries' conditions and spec.conditions over the report (judgeEvidence). Returns one
// sentence naming what failed, and — when a condition reads `now` — when the allow stops
// holding.
//
// Conditions that read a per-request variable (namespace, the image's name) cannot be
// decided once for the digest: for such policies the verification ends with the evidence,
// the cache keeps it, and judgeEvidence runs for every request.
import type { CompiledPolicy, CosignConfig } from "../policy/model.js";
import type { SignatureCheck, Subject } from "../types.js";
import type { AttestationSource } from "./discover.js";
import { earliest } from "./expiry.js";
import { memoised } from "./memo.js";
import type { RequestVars } from "./request.js";
import type { AttestationEvidence, AttestationResult } from "./types.js";
import { chooseAttestations, conditionsExpiry, firstFailing, gatherEvidence } from "./verify.js";

export { type AttestationSource, attestationTag, discoverAttestations } from "./discover.js";
export { type RequestVars, requestVars } from "./request.js";
export type { AttestationEvidence, AttestationResult, CompiledAttestationPolicy } from "./types.js";

export type Judgement = (
  | { state: "passed"; results: AttestationResult[]; reasons: string[]; expiresAt?: Date }
  | { state: "failed" | "error"; results: AttestationResult[]; reason: string }
) & {
  /** A condition reading `request.namespace` was evaluated: another namespace may be answered otherwise. */
  readNamespace: boolean;
};

/** Evidence kept for per-request judging, with the outcome that picks its cache TTL. */
export interface PerRequest {
  state: "per-request";
  evidence: AttestationEvidence;
  /**
   * "rejected"/"failed" when some entry has no candidate at all (every request is denied
   * whatever it reads), else "verified" (requests may be allowed).
   */
  outcome: "verified" | "rejected" | "failed";
}

export async function judgeAttestations(
  discover: (subject: Subject, o: { signal?: AbortSignal }) => Promise<AttestationSource>,
  subject: Subject,
  policy: CompiledPolicy,
  checks: SignatureCheck[],
  request: RequestVars,
  now: Date,
  signal: AbortSignal,
): Promise<Judgement | PerRequest> {
  const attest = policy.attest;
  if (!attest) return { state: "passed", results: [], reasons: [], readNamespace: false };
  const verifiers = new Map<string, CosignConfig>();
  for (const v of policy.verifiers) if (v.kind === "cosign") verifiers.set(v.name, v.cosign);
  let evidence: AttestationEvidence = { requirements: [] };
  if (attest.attestations.length > 0) {
    const source = await discover(subject, { signal });
    evidence = await gatherEvidence(source, attest.attestations, verifiers, { signal });
  }
  if (!attest.perRequest) return judgeEvidence(evidence, policy, checks, request, now);
  const misses = evidence.requirements.filter((r) => r.candidates.length === 0).map((r) => r.miss.result);
  const outcome = misses.includes("failed") ? "rejected" : misses.includes("error") ? "failed" : "verified";
  return { state: "per-request", evidence, outcome };
}

/** judgeEvidence for a request, remembered while it provably holds (memo.ts). */
export function judgeRequest(
  evidence: AttestationEvidence,
  policy: CompiledPolicy,
  checks: SignatureCheck[],
  request: RequestVars,
  now: Date,
): Judgement {
  const o = {
    usesNow: policy.attest?.usesNow ?? false,
    horizonMs: policy.cache.positiveTTLSeconds * 1000,
  };
  return memoised(evidence, request, now, o, () => judgeEvidence(evidence, policy, checks, request, now));
}

/** The conditions over `evidence` for one request (synchronous: no I/O). */
export function judgeEvidence(
  evidence: AttestationEvidence,
  policy: CompiledPolicy,
  checks: SignatureCheck[],
  request: RequestVars,
  now: Date,
): Judgement {
  const attest = policy.attest;
  if (!attest) return { state: "passed", results: [], reasons: [], readNamespace: false };
  const horizonMs = policy.cache.positiveTTLSeconds * 1000;
  const base = { image: request.image, request: request.request };

  const out = chooseAttestations(evidence, attest.attestations, { now, baseVars: base, horizonMs });
  const results = out.results;
  let readNamespace = out.readNamespace;
  const failed = results.find((r) => r.result === "failed") ?? results.find((r) => r.result === "error");
  if (failed) {
    return {
      state: failed.result === "error" ? "error" : "failed",
      results,
      reason: `attestation ${failed.name} (${failed.predicateType}): ${failed.reason}`,
      readNamespace,
    };
  }
  const statements: Record<string, unknown> = {};
  for (const [name, st] of out.statements)
    statements[name] = { predicateType: st.predicateType, predicate: st.predicate, signer: st.signer ?? "" };

  const signatures = checks
    .filter((c) => c.result === "passed")
    .map((c) => ({
      verifier: c.verifier,
      kind: c.kind,
      signer: c.signer ?? "",
      issuer: c.issuer ?? "",
      artifactDigest: c.artifactDigest ?? "",
    }));
  const vars = (at: Date) => ({ ...base, now: at, signatures, attestations: statements });
  const bad = firstFailing(attest.conditions, vars(now), (c) => {
    readNamespace ||= c.readsNamespace;
  });
  if (bad) return { state: "failed", results, reason: `${bad.cond.path}: ${bad.why}`, readNamespace };
  const expiresAt = earliest(out.expiresAt, conditionsExpiry(attest.conditions, vars, now, horizonMs));

  const reasons: string[] = [];
  if (results.length > 0)
    reasons.push(`attestations: ${results.map((r) => `${r.name} (${r.reason})`).join("; ")}`);
  if (attest.conditions.length > 0) reasons.push(`conditions: all ${attest.conditions.length} hold`);
  if (expiresAt) reasons.push(`time-dependent conditions hold until ${expiresAt.toISOString()}`);
  return { state: "passed", results, reasons, readNamespace, ...(expiresAt ? { expiresAt } : {}) };
}
