// The engine's single entry point: (subject, compiled policy) → Verdict.
//
//   exempt image        → outcome "exempt", allowed
//   not governed        → spec.unmatchedImages: Allow → "ungoverned"; Deny → "rejected"
//   otherwise           → the signature results for digest × revision (cached, or one
//                         shared verification: discover signature artifacts once, run every
//                         verifier over them), then — per request, with the reference
//                         actually used — the AnyOf/AllOf combination, the optional Rego
//                         gate and the reasons.
//
// The cache holds only what does not depend on the name (SignatureResult). Everything that
// does — exemptions, spec.images / unmatchedImages, Rego input, reason
// text — is decided on every call, so a result cached for one name never answers for
// another (docs/architecture.md, "Verdict cache").
//
// "Could not complete" (transient EngineError, or a verifier that reported only "error"
// checks where a definitive answer was needed) → outcome "failed", allowed per
// failurePolicy. A missing or invalid signature is a verdict ("rejected"), never a failure.
// Mode Audit turns every denial into allowed + auditOnly.
//
// The steps, one module each under verification/: input (input.ts), cache key
// (result-key.ts), single flight (the cache's shared()), budget and limits (budget.ts), the
// shared run with per-verifier checks (run.ts, checks.ts), combination (combine.ts), the
// per-request judgement with the Rego gate and attestations (judge.ts), and mode / failure
// policy (verdict.ts). This file wires them in that order.
//
// The shared verification runs under the engine's own time budget; a caller's AbortSignal
// or timeoutMs only ends that caller's wait (it gets the failure policy's answer) and the
// verification carries on for the others and for the cache.
import {
  CACHE_DEFAULTS,
  cacheKey,
  VerdictCache,
  type VerdictCacheOptions,
  type VerdictCacheStats,
} from "./cache.js";
import type { VerificationLimits } from "./limits.js";
import type { CompiledPolicy } from "./policy/model.js";
import type { TrustedRootResolver } from "./sigstore-trust/types.js";
import type { Outcome, Subject, Verdict } from "./types.js";
import { type CallerBudget, waitWithin, withinLimits } from "./verification/budget.js";
import { checkSubject, hasDigestAndName, nameDecision } from "./verification/input.js";
import { judgeCachedSignatures, judgeSignatures } from "./verification/judge.js";
import { resultRevision } from "./verification/result-key.js";
import { cacheable, refusedResult, verifySignatures } from "./verification/run.js";
import type { EngineDeps, SignatureResult } from "./verification/types.js";
import { couldNotVerify, type Judging } from "./verification/verdict.js";

export type { EngineDeps, SignatureResult, VerifierCallOptions } from "./verification/types.js";

export type VerifyOptions = CallerBudget;

export interface CoreOptions {
  cache?: VerdictCacheOptions;
  now?: () => Date;
  /** Budget of one shared verification (default 30 s). */
  verificationTimeoutMs?: number;
  /** Global and per-registry bounds on running verifications and bytes they hold (limits.ts). */
  limits?: VerificationLimits;
  /** Sigstore trusted roots named by TUF mirror in keyless verifiers (sigstore-trust/). */
  trustedRoots?: TrustedRootResolver;
}

export interface EngineStats extends VerdictCacheStats {
  /** Shared verifications started (each = one discovery + the policy's verifiers). */
  verifications: number;
  /** Verdicts by outcome, counted per caller. */
  outcomes: Record<Outcome, number>;
  /** Callers whose wait ended (timeout/abort) before the shared verification finished. */
  abandoned: number;
}

export interface Engine {
  verify(subject: Subject, policy: CompiledPolicy, opts?: VerifyOptions): Promise<Verdict>;
  /**
   * The verdict for this subject (its reference decides everything name-dependent) when it
   * needs no verification: exempt, not governed, or signature results cached for digest ×
   * revision. Undefined when a verification is needed.
   */
  cached(subject: Subject, policy: CompiledPolicy): Verdict | undefined;
  stats(): EngineStats;
  /** Drops every cached verdict (in-flight verifications still finish). */
  clearCache(): void;
}

export function createEngineCore(deps: EngineDeps, opts: CoreOptions = {}): Engine {
  const now = opts.now ?? (() => new Date());
  const cache = new VerdictCache<SignatureResult>({ now: () => now().getTime(), ...opts.cache });
  const budgetMs = opts.verificationTimeoutMs ?? 30_000;
  const counters = {
    verifications: 0,
    abandoned: 0,
    outcomes: { verified: 0, rejected: 0, failed: 0, exempt: 0, ungoverned: 0 } as Record<Outcome, number>,
  };
  const judging = (subject: Subject, policy: CompiledPolicy): Judging => ({
    subject,
    policy,
    started: performance.now(),
    now,
  });
  const count = (v: Verdict): Verdict => {
    counters.outcomes[v.outcome]++;
    return v;
  };

  /** The shared verification for digest × result revision, inside the limits; remembered when it may be. */
  function sharedRun(subject: Subject, policy: CompiledPolicy, resultRev: string): Promise<SignatureResult> {
    const run = async () => {
      counters.verifications++;
      const result = await verifySignatures(deps, subject, policy, resultRev, {
        now,
        budgetMs,
        trustedRoots: opts.trustedRoots,
      });
      if (cacheable(subject, result)) cache.set(result, policy.cache);
      return result;
    };
    return withinLimits(opts.limits, subject, run, (err) =>
      refusedResult(subject, policy, resultRev, err, now()),
    );
  }

  async function verify(subject: Subject, policy: CompiledPolicy, o: VerifyOptions = {}): Promise<Verdict> {
    const j = judging(subject, policy);
    // 1. Input: a valid subject; the name alone may decide (exempt, not governed).
    checkSubject(subject);
    const named = nameDecision(j);
    if (named) return count(named);
    // 2. Cache: signature results for digest × result revision, judged for this caller.
    const resultRev = resultRevision(subject, policy, opts.trustedRoots);
    const hit = cache.get(subject.digest, resultRev);
    if (hit) return count(judgeCachedSignatures(j, hit));
    // 3. Single flight: one shared verification per key, within the limits and its budget.
    const { promise } = cache.shared(cacheKey(subject.digest, resultRev), () =>
      sharedRun(subject, policy, resultRev),
    );
    // 4. This caller's budget: giving up answers per failurePolicy; the verification goes on.
    const v = await waitWithin(
      promise.then((sig) => judgeSignatures(j, sig)),
      o,
      (err) => {
        counters.abandoned++;
        return couldNotVerify(j, err, []);
      },
    );
    // Callers that joined someone else's verification get their own timing.
    return count({ ...v, durationMs: Math.max(0, performance.now() - j.started) });
  }

  function cached(subject: Subject, policy: CompiledPolicy): Verdict | undefined {
    const j = judging(subject, policy);
    if (!hasDigestAndName(subject)) return undefined;
    let named: Verdict | undefined;
    try {
      named = nameDecision(j);
    } catch {
      return undefined; // verify() reports the invalid reference
    }
    if (named) return count(named);
    const hit = cache.get(subject.digest, resultRevision(subject, policy, opts.trustedRoots));
    return hit ? count(judgeCachedSignatures(j, hit)) : undefined;
  }

  return {
    verify,
    cached,
    stats: () => ({ ...cache.stats(), ...counters, outcomes: { ...counters.outcomes } }),
    clearCache: () => cache.clear(),
  };
}

export { CACHE_DEFAULTS };
