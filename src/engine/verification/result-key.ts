// Step: cache key. Signature results are cached per digest × "result revision".
import { selectPolicy as selectTrustPolicy } from "../notation/policy.js";
import type { CompiledPolicy } from "../policy/model.js";
import { trustEpoch } from "../sigstore-trust/resolve.js";
import type { TrustedRootResolver } from "../sigstore-trust/types.js";
import type { Subject } from "../types.js";

/**
 * The revision part of the signature-results key. Results depend on the name only where a
 * verifier selects its options by the reference: a notation trust policy document picks
 * one trust policy per repository (registryScopes). Names that select the same trust
 * policies share results; a name that selects others never reuses them. Keyless verifiers
 * whose trusted root comes from TUF add the digest of the root held now, so a rotated root
 * re-decides.
 */
export function resultRevision(
  subject: Subject,
  policy: CompiledPolicy,
  trustedRoots?: TrustedRootResolver,
): string {
  let scoped = false;
  const parts = policy.verifiers.map((v) => {
    if (v.kind !== "notation" || v.notation.trustPolicies.length === 0) return "";
    scoped = true;
    return selectTrustPolicy(v.notation.trustPolicies, subject.reference)?.name ?? "\u0000none";
  });
  const rev = scoped ? `${policy.revision}#${JSON.stringify(parts)}` : policy.revision;
  return rev + trustEpoch(policy, trustedRoots);
}
