// Step: per-verifier checks. Which artifact kinds to discover for the policy's verifiers, and
// one verifier run over the discovered artifacts, always answering with at least one check.
import { toEngineError } from "../errors.js";
import type { CompiledPolicy, CompiledVerifier } from "../policy/model.js";
import type { ArtifactKind, ArtifactSource, SignatureCheck } from "../types.js";
import type { EngineDeps } from "./types.js";

const NOTATION_KINDS: ArtifactKind[] = ["notation"];
const COSIGN_KINDS: ArtifactKind[] = ["cosign-bundle", "cosign-artifact-sig", "cosign-simplesigning"];

/** Discovery fetches only what the policy's verifiers can read. */
export function artifactKinds(policy: CompiledPolicy): ArtifactKind[] {
  return [
    ...(policy.verifiers.some((v) => v.kind === "notation") ? NOTATION_KINDS : []),
    ...(policy.verifiers.some((v) => v.kind === "cosign") ? COSIGN_KINDS : []),
  ];
}

/**
 * Runs one verifier. Throws only what ends the whole verification (a transient error, or
 * the budget's abort); anything else is this verifier's failed check.
 */
export async function runVerifier(
  deps: Pick<EngineDeps, "notation" | "cosign">,
  v: CompiledVerifier,
  source: ArtifactSource,
  signal: AbortSignal,
  now: Date,
): Promise<SignatureCheck[]> {
  const callOpts = { verifierName: v.name, now, signal };
  try {
    const checks =
      v.kind === "notation"
        ? await deps.notation(source, v.notation, callOpts)
        : await deps.cosign(source, v.cosign, callOpts);
    if (checks.length > 0) return checks;
    return [
      {
        verifier: v.name,
        kind: v.kind,
        result: "failed",
        check: "signature",
        reason: `no ${v.kind} signature found`,
      },
    ];
  } catch (e) {
    const err = toEngineError(e);
    if (err.transient || signal.aborted) throw err;
    // A non-transient error from one verifier (bad configuration it detected, malformed
    // content) is that verifier's failure, reported like any other failed check.
    return [
      {
        verifier: v.name,
        kind: v.kind,
        result: "failed",
        check: "error",
        reason: err.message,
        details: { code: err.code },
      },
    ];
  }
}
