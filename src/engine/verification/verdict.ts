// Step: mode and failure policy. Every verdict is made here, from an outcome and its reasons:
// `allowed` follows the outcome, then failurePolicy (for "could not complete"), then mode
// Audit (which turns any denial into allowed + auditOnly).
import type { EngineError } from "../errors.js";
import type { CompiledPolicy } from "../policy/model.js";
import type { Outcome, SignatureCheck, Subject, Verdict } from "../types.js";

/** One caller's request being judged: its own subject (reference) and clock. */
export interface Judging {
  subject: Subject;
  policy: CompiledPolicy;
  /** performance.now() when this caller's request started. */
  started: number;
  now: () => Date;
}

export function imageLabel(s: { reference: string; digest: string }): string {
  return s.reference.includes(s.digest) ? s.reference : `${s.reference}@${s.digest}`;
}

export function conclude(
  j: Judging,
  outcome: Outcome,
  reasons: string[],
  verifiers: SignatureCheck[],
  failure?: { code: string; message: string },
): Verdict {
  const { policy, subject } = j;
  let allowed =
    outcome === "verified" || outcome === "exempt" || outcome === "ungoverned"
      ? true
      : outcome === "failed"
        ? policy.failurePolicy === "Open"
        : false;
  const out = [...reasons];
  let auditOnly: boolean | undefined;
  if (outcome === "failed") {
    out.push(
      `failurePolicy ${policy.failurePolicy}: ${policy.failurePolicy === "Open" ? "allowed" : "denied"} because verification could not complete`,
    );
  }
  if (!allowed && policy.mode === "Audit") {
    allowed = true;
    auditOnly = true;
    out.push(`mode Audit: allowed, but ImagePolicy ${policy.name} would deny it`);
  }
  return {
    allowed,
    outcome,
    mode: policy.mode,
    policy: { name: policy.name, revision: policy.revision },
    subject: { reference: subject.reference, digest: subject.digest },
    reasons: out,
    verifiers,
    cached: false,
    durationMs: Math.max(0, performance.now() - j.started),
    decidedAt: j.now().toISOString(),
    ...(failure ? { failure } : {}),
    ...(auditOnly ? { auditOnly } : {}),
  };
}

/** "Could not complete": outcome failed, allowed per failurePolicy. */
export function couldNotVerify(j: Judging, err: EngineError, checks: SignatureCheck[]): Verdict {
  return conclude(
    j,
    "failed",
    [`ImagePolicy ${j.policy.name} could not verify ${imageLabel(j.subject)}: ${err.message}`],
    checks,
    { code: err.code, message: err.message },
  );
}

/** A definitive denial with one reason. */
export function denied(j: Judging, detail: string, checks: SignatureCheck[]): Verdict {
  return conclude(
    j,
    "rejected",
    [`ImagePolicy ${j.policy.name} denies ${imageLabel(j.subject)}: ${detail}`],
    checks,
  );
}
