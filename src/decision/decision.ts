// One decision = one answer the agent gave (create-time gate, pull verifier, Synchronize
// audit). It is what the audit log records, what metrics count and what the denial text
// shown to kubelet is made from.
import type { Mode, Verdict } from "../engine/types.js";
import type { PolicyRef } from "./ports.js";

export type DecisionEvent = "create" | "pull" | "sync";

/** Why the answer came out as it did. */
export type DecisionKind =
  | "verified" // the policy's requirements are met
  | "ungoverned" // the policy does not govern this image
  | "rejected" // requirements not met (enforced)
  | "failed" // verification could not complete: failure policy decided
  | "audit" // would be denied, policy in Audit mode
  | "break-glass" // would be denied, namespace under a valid break-glass
  | "exempt"; // exempt namespace or image

/** Where the verdict came from. */
export type VerdictSource = "cache" | "verify" | "budget" | "none";

/** Where decisions go (the agent's audit log, the pull verifier's diagnostics). */
export interface DecisionSink {
  record(d: Decision): void;
}

export interface Decision {
  event: DecisionEvent;
  allowed: boolean;
  kind: DecisionKind;
  /** One line: what was decided and why (the text kubelet / containerd shows). */
  message: string;
  /** Headline reason (no prefix). */
  reason: string;
  image: string;
  digest?: string;
  namespace?: string;
  policy?: { name: string; revision: string };
  mode?: Mode;
  source: VerdictSource;
  durationMs: number;
  container?: { id: string; name: string; pod: string; podUid?: string };
  verdict?: Verdict;
  /** Pull decisions over several policies: one entry per policy consulted. */
  policies?: Array<{ name: string; revision: string; allowed: boolean; kind: DecisionKind; reason: string }>;
  breakGlassUntil?: string;
  exemptBy?: string;
  /** Operator-facing remarks from policy selection (e.g. a refused break-glass annotation). */
  notes?: string[];
}

/** Applies mode and break-glass to a verdict: the one place "would deny" turns into an answer. */
export function judge(
  verdict: Verdict,
  policy: PolicyRef,
  breakGlassUntilMs: number | undefined,
  now: number,
): { allowed: boolean; kind: DecisionKind; reason: string } {
  const reason = headline(verdict);
  const wouldDeny = !verdict.allowed || verdict.auditOnly === true;
  if (!wouldDeny) {
    const kind: DecisionKind =
      verdict.outcome === "ungoverned"
        ? "ungoverned"
        : verdict.outcome === "failed"
          ? "failed"
          : verdict.outcome === "exempt"
            ? "exempt"
            : "verified";
    return { allowed: true, kind, reason };
  }
  if (policy.mode === "Audit" || verdict.mode === "Audit") return { allowed: true, kind: "audit", reason };
  if (breakGlassUntilMs !== undefined && breakGlassUntilMs > now)
    return { allowed: true, kind: "break-glass", reason };
  return { allowed: false, kind: verdict.outcome === "failed" ? "failed" : "rejected", reason };
}

/** The answer when no verdict could be had (resolution failed, budget ran out, source error). */
export function judgeFailure(
  policy: Pick<PolicyRef, "mode" | "failurePolicy"> | undefined,
  failurePolicy: "Closed" | "Open",
  breakGlassUntilMs: number | undefined,
  now: number,
): { allowed: boolean; kind: DecisionKind } {
  if (failurePolicy === "Open") return { allowed: true, kind: "failed" };
  if (policy?.mode === "Audit") return { allowed: true, kind: "audit" };
  if (breakGlassUntilMs !== undefined && breakGlassUntilMs > now)
    return { allowed: true, kind: "break-glass" };
  return { allowed: false, kind: "failed" };
}

export function headline(v: Verdict): string {
  const r = v.reasons[0] ?? v.failure?.message ?? (v.allowed ? "allowed" : "denied");
  return oneLine(r);
}

/** Collapses whitespace and caps length: the text must stay one line in kubectl describe. */
export function oneLine(s: string, max = 1024): string {
  const t = s
    .replace(/[\r\n\t]+/g, " ")
    .replace(/ {2,}/g, " ")
    .trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

export function shortRevision(rev: string): string {
  return rev.length > 12 ? rev.slice(0, 12) : rev;
}

/**
 * `tollgate: denied 127.0.0.1:5000/app:v1 (sha256:…) in namespace "team-b" by policy
 * "strict" (rev 1a2b3c): no cosign signature found`
 */
export function formatMessage(d: {
  allowed: boolean;
  kind: DecisionKind;
  image: string;
  digest?: string;
  namespace?: string;
  policy?: { name: string; revision: string };
  reason: string;
}): string {
  const verb = d.allowed
    ? d.kind === "audit"
      ? "allowed (audit mode, would deny)"
      : d.kind === "break-glass"
        ? "allowed (break-glass, would deny)"
        : d.kind === "exempt"
          ? "allowed (exempt)"
          : d.kind === "failed"
            ? "allowed (failure policy Open)"
            : "allowed"
    : "denied";
  let s = `tollgate: ${verb} ${d.image || "<unknown image>"}`;
  if (d.digest) s += ` (${d.digest})`;
  if (d.namespace !== undefined) s += ` in namespace "${d.namespace}"`;
  if (d.policy) s += ` by policy "${d.policy.name}" (rev ${shortRevision(d.policy.revision)})`;
  return oneLine(`${s}: ${d.reason}`, 4096);
}
