// Step: cache key. Signature results are cached per digest × "result revision".
import { memoPerObject } from "../../base/memo.js";
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
  return scopedRevision(subject.reference, policy) + trustEpoch(policy, trustedRoots);
}

/** Name-scoped revisions worked out per compiled policy (fixed for its lifetime) and reference. */
const scopedMemo = memoPerObject<CompiledPolicy, string>(1024);

function scopedRevision(reference: string, policy: CompiledPolicy): string {
  // Memoised: selecting the trust policy parses the reference and every registry scope, and
  // each CreateContainer of a cached image asks again for the same few names.
  const memo = scopedMemo(policy);
  const known = memo.get(reference);
  if (known !== undefined) return known;
  let scoped = false;
  const parts = policy.verifiers.map((v) => {
    if (v.kind !== "notation" || v.notation.trustPolicies.length === 0) return "";
    scoped = true;
    return selectTrustPolicy(v.notation.trustPolicies, reference)?.name ?? "\u0000none";
  });
  return memo.set(reference, scoped ? `${policy.revision}#${JSON.stringify(parts)}` : policy.revision);
}
