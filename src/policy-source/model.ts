// The slice of the policy model (src/engine/policy/) that policy sources need. Sources only
// compile documents and carry the result; they never look inside a policy beyond its name,
// revision, mode and failure policy.

import { compilePolicy } from "../engine/policy/compile.js";
import type { CompiledPolicy, TrustMaterialRef, TrustMaterialResolver } from "../engine/policy/model.js";
import type { FailurePolicy, Mode } from "../engine/types.js";

export type { CompiledPolicy, TrustMaterialRef, TrustMaterialResolver };

/** What a source needs from a compiled policy; the engine's CompiledPolicy satisfies it. */
export interface CompiledPolicyLike {
  name: string;
  revision: string;
  mode: Mode;
  failurePolicy: FailurePolicy;
}

/**
 * Compiles one ImagePolicy document (a plain object as read from YAML or the API server).
 * Rejects with an error whose message says what is wrong (with paths) when invalid.
 */
export type PolicyCompiler<P extends CompiledPolicyLike = CompiledPolicy> = (
  doc: unknown,
  resolver: TrustMaterialResolver,
) => Promise<P>;

export function refKey(ref: Pick<TrustMaterialRef, "kind" | "namespace" | "name">): string {
  return `${ref.kind}/${ref.namespace}/${ref.name}`;
}

/** The engine's compiler: validation with paths, trust material resolution, revision. */
export const engineCompiler: PolicyCompiler<CompiledPolicy> = (doc, resolver) =>
  compilePolicy(doc, { resolver });
