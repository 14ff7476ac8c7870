// Step: combination. Each verifier's checks become one state (passed / failed /
// indeterminate); spec.match (AnyOf / AllOf) combines the states into the signature stage's.
import type { CompiledPolicy, CompiledVerifier } from "../policy/model.js";
import type { SignatureCheck, VerifierKind } from "../types.js";

export type VerifierState = "passed" | "failed" | "indeterminate";

export interface VerifierSummary {
  name: string;
  kind: VerifierKind;
  state: VerifierState;
  checks: SignatureCheck[];
}

/** One passing check passes the verifier; otherwise any "error" leaves it undecided. */
export function summarise(v: CompiledVerifier, checks: SignatureCheck[]): VerifierSummary {
  const state: VerifierState = checks.some((c) => c.result === "passed")
    ? "passed"
    : checks.some((c) => c.result === "error")
      ? "indeterminate"
      : "failed";
  return { name: v.name, kind: v.kind, state, checks };
}

export function summariseAll(policy: CompiledPolicy, perVerifier: SignatureCheck[][]): VerifierSummary[] {
  return policy.verifiers.map((v, i) => summarise(v, perVerifier[i] ?? []));
}

/** The verifier's name and the reason of the check that decided its state. */
export function why(s: VerifierSummary): string {
  const pick =
    s.checks.find(
      (c) => c.result === (s.state === "passed" ? "passed" : s.state === "failed" ? "failed" : "error"),
    ) ?? s.checks[0];
  const reason = pick?.reason ?? "no result";
  const who = s.state === "passed" && pick?.signer ? ` (signer ${pick.signer})` : "";
  return `${s.name}: ${reason}${who}`;
}

/** AnyOf / AllOf over the verifiers' states. */
export function combine(policy: CompiledPolicy, summaries: VerifierSummary[]): VerifierState {
  const has = (st: VerifierState) => summaries.some((s) => s.state === st);
  if (policy.match === "AllOf")
    return has("failed") ? "failed" : has("indeterminate") ? "indeterminate" : "passed";
  return has("passed") ? "passed" : has("indeterminate") ? "indeterminate" : "failed";
}
