// A pull has no namespace, yet a policy's CEL conditions may read `request.namespace`. The pull rule
// (docs/pull-semantics.md) is "admit when some namespace on this node could run the image",
// so for a verdict that a `request.namespace` condition decided, the policy admits the pull when it
// allows the image for at least one namespace the policy source knows that uses this policy.
// With none known, the namespace-less verdict (`request.namespace == ""`) stands. The verification
// itself ran once: each namespace's verdict is judged from the cached results.
import type { Subject, Verdict } from "../engine/types.js";
import type { PolicyRef, PolicySelector, VerifyEngine } from "./ports.js";

export async function forSomeNamespace<P extends PolicyRef>(
  engine: VerifyEngine<P>,
  selector: PolicySelector<P>,
  subject: Subject,
  policy: P,
  verdict: Verdict,
  now: Date,
): Promise<Verdict> {
  if (!verdict.namespaceDependent || !selector.namespacesUsing) return verdict;
  const names = selector.namespacesUsing(policy, now);
  if (names.length === 0) return verdict;
  let denial: Verdict | undefined;
  let verified = false;
  for (const namespace of names) {
    const s: Subject = { ...subject, namespace };
    // Cached after the first verification. If the entry is gone (evicted, or a cache that
    // keeps nothing) one verification answers its namespace; the others are then judged
    // from the cache only, so a long namespace list never means as many verifications.
    let v = engine.cached(s, policy);
    if (!v && !verified) {
      verified = true;
      v = await engine.verify(s, policy);
    }
    if (!v) continue;
    if (v.allowed) return v;
    denial ??= v;
  }
  // Reasons name the conditions, not the namespaces: pull text reaches the pulling pod's Events.
  return denial ?? verdict;
}
