// The attestation step of a verification: runs after the signature verifiers accepted the
// image. Discovers the subject's attestations, checks every spec.attestations requirement,
// then evaluates spec.conditions over the report. Returns one sentence naming what failed,
// and — when a condition reads `now` — when the allow stops holding.
import type { CompiledPolicy, CosignConfig } from "../policy/model.js";
import type { SignatureCheck, Subject } from "../types.js";
import type { AttestationSource } from "./discover.js";
import { earliest } from "./expiry.js";
import type { AttestationResult } from "./types.js";
import { conditionsExpiry, firstFailing, verifyAttestations } from "./verify.js";

export { type AttestationSource, attestationTag, discoverAttestations } from "./discover.js";
export type { AttestationResult, CompiledAttestationPolicy } from "./types.js";

export type Judgement =
  | { state: "passed"; results: AttestationResult[]; reasons: string[]; expiresAt?: Date }
  | { state: "failed" | "error"; results: AttestationResult[]; reason: string };

export async function judgeAttestations(
  discover: (subject: Subject, o: { signal?: AbortSignal }) => Promise<AttestationSource>,
  subject: Subject,
  policy: CompiledPolicy,
  checks: SignatureCheck[],
  now: Date,
  signal: AbortSignal,
): Promise<Judgement> {
  const attest = policy.attest;
  if (!attest) return { state: "passed", results: [], reasons: [] };
  const horizonMs = policy.cache.positiveTTLSeconds * 1000;
  const image = { digest: subject.digest };
  const verifiers = new Map<string, CosignConfig>();
  for (const v of policy.verifiers) if (v.kind === "cosign") verifiers.set(v.name, v.cosign);

  let results: AttestationResult[] = [];
  const statements: Record<string, unknown> = {};
  let expiresAt: Date | undefined;
  if (attest.attestations.length > 0) {
    const source = await discover(subject, { signal });
    const out = await verifyAttestations(source, attest.attestations, verifiers, {
      now,
      signal,
      baseVars: { image },
      horizonMs,
    });
    results = out.results;
    const failed = results.find((r) => r.result === "failed") ?? results.find((r) => r.result === "error");
    if (failed) {
      return {
        state: failed.result === "error" ? "error" : "failed",
        results,
        reason: `attestation ${failed.name} (${failed.predicateType}): ${failed.reason}`,
      };
    }
    for (const [name, st] of out.statements)
      statements[name] = {
        predicateType: st.predicateType,
        predicate: st.predicate,
        signer: st.signer ?? "",
      };
    expiresAt = out.expiresAt;
  }

  const signatures = checks
    .filter((c) => c.result === "passed")
    .map((c) => ({
      verifier: c.verifier,
      kind: c.kind,
      signer: c.signer ?? "",
      issuer: c.issuer ?? "",
      artifactDigest: c.artifactDigest ?? "",
    }));
  const vars = (at: Date) => ({ image, now: at, signatures, attestations: statements });
  const bad = firstFailing(attest.conditions, vars(now));
  if (bad) return { state: "failed", results, reason: `${bad.cond.path}: ${bad.why}` };
  expiresAt = earliest(expiresAt, conditionsExpiry(attest.conditions, vars, now, horizonMs));

  const reasons: string[] = [];
  if (results.length > 0)
    reasons.push(`attestations: ${results.map((r) => `${r.name} (${r.reason})`).join("; ")}`);
  if (attest.conditions.length > 0) reasons.push(`conditions: all ${attest.conditions.length} hold`);
  if (expiresAt) reasons.push(`time-dependent conditions hold until ${expiresAt.toISOString()}`);
  return { state: "passed", results, reasons, ...(expiresAt ? { expiresAt } : {}) };
}
