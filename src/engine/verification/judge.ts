// Step: the per-request judgement. Cached, name-independent signature results become this
// caller's verdict: the AnyOf / AllOf combination with its reasons, the optional Rego gate
// (its input carries this caller's reference), then the cached attestation judgement — or,
// when a condition reads a per-request variable, the conditions judged over the cached
// evidence for this caller's namespace and name.
import { judgeRequest, requestVars } from "../attest/index.js";
import { EngineError, toEngineError } from "../errors.js";
import type { RegoInput } from "../policy/model.js";
import type { SignatureCheck, Verdict } from "../types.js";
import { combine, summariseAll, type VerifierSummary, why } from "./combine.js";
import type { SignatureResult, StoredJudgement } from "./types.js";
import { conclude, couldNotVerify, denied, imageLabel, type Judging } from "./verdict.js";

/** The verdict for `j.subject` (its own reference) from signature results. */
export function judgeSignatures(j: Judging, sig: SignatureResult): Verdict {
  let v: Verdict;
  if (sig.error || !sig.perVerifier) {
    const err = new EngineError(
      (sig.error?.code ?? "INTERNAL") as EngineError["code"],
      sig.error?.message ?? "no signature results",
    );
    v = sig.error?.transient ? couldNotVerify(j, err, sig.checks) : denied(j, err.message, sig.checks);
  } else {
    // Verifier results carry no name (no policy verifier option depends on it); what
    // does — AnyOf/AllOf's reasons, Rego's input — is evaluated here, for this subject.
    const per = sig.perVerifier;
    v = decide(j, summariseAll(j.policy, per), per.flat());
    if (v.outcome === "verified" && sig.attestation)
      v = withAttestations(j, v, sig.attestation, sig.expiresAt);
    else if (v.outcome === "verified" && sig.attestationEvidence) {
      // Conditions reading the namespace or the image's name: judged for this request.
      const a = judgeRequest(sig.attestationEvidence, j.policy, per.flat(), requestVars(j.subject), j.now());
      const until = a.state === "passed" ? a.expiresAt?.toISOString() : undefined;
      v = withAttestations(j, v, a, until);
      if (a.readNamespace) v = { ...v, namespaceDependent: true };
    }
  }
  return { ...v, cached: sig.cached, decidedAt: sig.decidedAt };
}

/** The verdict last judged from each cached result, with the policy object and reference it was for. */
const judgedHits = new WeakMap<
  SignatureResult,
  { policy: Judging["policy"]; reference: string; verdict: Verdict }
>();

/**
 * judgeSignatures for a result served from the cache (the cache serves one frozen object per
 * entry). When the judgement reads neither the clock nor the request's namespace — no Rego
 * (its builtins may read the time) and no per-request attestation conditions — it is a
 * function of the result, the policy object and the reference alone, so the previous
 * identical request's verdict is served again, frozen. Every create of a running image
 * takes this path.
 */
export function judgeCachedSignatures(j: Judging, sig: SignatureResult): Verdict {
  if (j.policy.rego || sig.attestationEvidence) return judgeSignatures(j, sig);
  const m = judgedHits.get(sig);
  if (m && m.policy === j.policy && m.reference === j.subject.reference) return m.verdict;
  const verdict = Object.freeze(judgeSignatures(j, sig));
  judgedHits.set(sig, { policy: j.policy, reference: j.subject.reference, verdict });
  return verdict;
}

/** The combination's verdict, with the reasons naming the verifiers that decided it. */
function decide(j: Judging, summaries: VerifierSummary[], checks: SignatureCheck[]): Verdict {
  const { policy } = j;
  const state = combine(policy, summaries);
  if (state === "indeterminate") {
    const first = summaries.find((s) => s.state === "indeterminate")!;
    const code = String(
      first.checks.find((c) => c.result === "error")?.details?.code ?? "REGISTRY_UNAVAILABLE",
    );
    const v = couldNotVerify(j, new EngineError("REGISTRY_UNAVAILABLE", why(first)), checks);
    return { ...v, failure: { code, message: why(first) } };
  }
  if (state === "failed") {
    const detail =
      policy.match === "AllOf"
        ? `verifier ${why(summaries.find((s) => s.state === "failed")!)}`
        : `no verifier accepted it (${summaries.map(why).join("; ")})`;
    return denied(j, detail, checks);
  }
  const matchReason =
    policy.match === "AllOf"
      ? `verified by ${summaries.map(why).join("; ")}`
      : `verified by ${why(summaries.find((s) => s.state === "passed")!)}`;
  return regoGate(j, matchReason, checks);
}

/** spec.rego, when present, decides after the signatures passed; its reasons are appended. */
function regoGate(j: Judging, matchReason: string, checks: SignatureCheck[]): Verdict {
  const { policy, subject } = j;
  const allows = `ImagePolicy ${policy.name} allows ${imageLabel(subject)}: ${matchReason}`;
  if (!policy.rego) return conclude(j, "verified", [allows], checks);
  const input: RegoInput = {
    subject: { reference: subject.reference, digest: subject.digest },
    policy: { name: policy.name, revision: policy.revision, mode: policy.mode, match: policy.match },
    verifiers: checks,
    match: { allowed: true, reason: matchReason },
  };
  let d: ReturnType<typeof policy.rego.evaluate>;
  try {
    d = policy.rego.evaluate(input);
  } catch (e) {
    return couldNotVerify(j, toEngineError(e, "INVALID_POLICY"), checks);
  }
  if (!d.allow) {
    return conclude(
      j,
      "rejected",
      [
        `ImagePolicy ${policy.name} denies ${imageLabel(subject)}: ${d.reasons.join("; ")}`,
        `signatures: ${matchReason}`,
      ],
      checks,
    );
  }
  return conclude(j, "verified", [allows, ...d.reasons], checks);
}

/** Applies the cached attestation judgement to a verdict whose signatures passed. */
function withAttestations(
  j: Judging,
  verdict: Verdict,
  judgement: StoredJudgement,
  expiresAt: string | undefined,
): Verdict {
  if (judgement.state === "passed")
    return {
      ...verdict,
      reasons: [...verdict.reasons, ...judgement.reasons],
      attestations: judgement.results,
      ...(expiresAt ? { expiresAt } : {}),
    };
  const base =
    judgement.state === "error"
      ? couldNotVerify(j, new EngineError("REGISTRY_UNAVAILABLE", judgement.reason), verdict.verifiers)
      : denied(j, judgement.reason, verdict.verifiers);
  return { ...base, attestations: judgement.results };
}
