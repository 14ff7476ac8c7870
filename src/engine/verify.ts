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
// The shared verification runs under the engine's own time budget; a caller's AbortSignal
// or timeoutMs only ends that caller's wait (it gets the failure policy's answer) and the
// verification carries on for the others and for the cache.
import { isSupportedDigest } from "../base/digest.js";
import { type AttestationResult, type AttestationSource, judgeAttestations } from "./attest/index.js";
import {
  CACHE_DEFAULTS,
  cacheKey,
  VerdictCache,
  type VerdictCacheOptions,
  type VerdictCacheStats,
} from "./cache.js";
import { abortable } from "./abortable.js";
import { EngineError, toEngineError } from "./errors.js";
import { canonicalReference } from "./identity.js";
import type {
  CompiledPolicy,
  CompiledVerifier,
  CosignConfig,
  NotationConfig,
  RegoInput,
} from "./policy/model.js";
import type { VerificationLimits } from "./limits.js";
import { selectPolicy as selectTrustPolicy } from "./notation/policy.js";
import { parseReference } from "./reference.js";
import type {
  ArtifactKind,
  ArtifactSource,
  Outcome,
  SignatureCheck,
  Subject,
  Verdict,
  VerifierKind,
} from "./types.js";

export interface VerifierCallOptions {
  verifierName: string;
  now?: Date;
  signal?: AbortSignal;
}

/** The engine's collaborators; createEngine (index.ts) wires the real ones. */
export interface EngineDeps {
  discover(subject: Subject, opts: { signal?: AbortSignal; kinds?: ArtifactKind[] }): Promise<ArtifactSource>;
  notation(source: ArtifactSource, cfg: NotationConfig, opts: VerifierCallOptions): Promise<SignatureCheck[]>;
  cosign(source: ArtifactSource, cfg: CosignConfig, opts: VerifierCallOptions): Promise<SignatureCheck[]>;
  /** Attestation discovery (policies with spec.attestations); absent = none can be found. */
  attestations?(subject: Subject, opts: { signal?: AbortSignal }): Promise<AttestationSource>;
}

export interface VerifyOptions {
  /** Ends this caller's wait (not the shared verification). */
  signal?: AbortSignal;
  /** This caller's budget; when it runs out the failure policy answers and verification continues. */
  timeoutMs?: number;
}

export interface CoreOptions {
  cache?: VerdictCacheOptions;
  now?: () => Date;
  /** Budget of one shared verification (default 30 s). */
  verificationTimeoutMs?: number;
  /** Global and per-registry bounds on running verifications and bytes they hold (limits.ts). */
  limits?: VerificationLimits;
}

export interface EngineStats extends VerdictCacheStats {
  /** Shared verifications started (each = one discovery + the policy's verifiers). */
  verifications: number;
  /** Verdicts by outcome, counted per caller. */
  outcomes: Record<Outcome, number>;
  /** Callers whose wait ended (timeout/abort) before the shared verification finished. */
  abandoned: number;
}

/**
 * What the cache holds per digest × policy revision: the verifiers' results, nothing that
 * depends on the image name. `outcome` is the signature stage's own conclusion (it picks
 * the TTL); the verdict a caller gets is made from it per request.
 */
export interface SignatureResult {
  outcome: "verified" | "rejected" | "failed";
  /** `reference` is the first requester's, kept for logs only; never used to decide. */
  subject: { reference: string; digest: string };
  policy: { name: string; revision: string };
  /** Per policy verifier, in policy order. Absent when the run stopped with `error`. */
  perVerifier?: SignatureCheck[][];
  /** The run stopped before the verifiers answered (transient → "could not complete"). */
  error?: { code: string; message: string; transient: boolean };
  /** What was reported before the run stopped with `error`; empty when perVerifier holds them. */
  checks: SignatureCheck[];
  /**
   * spec.attestations / spec.conditions, judged after the signatures passed (attest/). They
   * read only digest-bound data (statements, signature results, `now`), so they are cached
   * here; `expiresAt` is when a time-dependent condition stops holding.
   */
  attestation?: StoredJudgement;
  expiresAt?: string;
  decidedAt: string;
  durationMs: number;
  cached: boolean;
}

type StoredJudgement =
  | { state: "passed"; results: AttestationResult[]; reasons: string[] }
  | { state: "failed" | "error"; results: AttestationResult[]; reason: string };

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

const NOTATION_KINDS: ArtifactKind[] = ["notation"];
const COSIGN_KINDS: ArtifactKind[] = ["cosign-bundle", "cosign-artifact-sig", "cosign-simplesigning"];

function imageLabel(s: { reference: string; digest: string }): string {
  return s.reference.includes(s.digest) ? s.reference : `${s.reference}@${s.digest}`;
}

type VerifierState = "passed" | "failed" | "indeterminate";

interface VerifierSummary {
  name: string;
  kind: VerifierKind;
  state: VerifierState;
  checks: SignatureCheck[];
}

function summarise(v: CompiledVerifier, checks: SignatureCheck[]): VerifierSummary {
  const state: VerifierState = checks.some((c) => c.result === "passed")
    ? "passed"
    : checks.some((c) => c.result === "error")
      ? "indeterminate"
      : "failed";
  return { name: v.name, kind: v.kind, state, checks };
}

function why(s: VerifierSummary): string {
  const pick =
    s.checks.find(
      (c) => c.result === (s.state === "passed" ? "passed" : s.state === "failed" ? "failed" : "error"),
    ) ?? s.checks[0];
  const reason = pick?.reason ?? "no result";
  const who = s.state === "passed" && pick?.signer ? ` (signer ${pick.signer})` : "";
  return `${s.name}: ${reason}${who}`;
}

/** AnyOf / AllOf over the verifiers' states. */
function combine(policy: CompiledPolicy, summaries: VerifierSummary[]): VerifierState {
  const has = (st: VerifierState) => summaries.some((s) => s.state === st);
  if (policy.match === "AllOf")
    return has("failed") ? "failed" : has("indeterminate") ? "indeterminate" : "passed";
  return has("passed") ? "passed" : has("indeterminate") ? "indeterminate" : "failed";
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

  function finish(
    policy: CompiledPolicy,
    subject: Subject,
    started: number,
    outcome: Outcome,
    reasons: string[],
    verifiers: SignatureCheck[],
    extra: { failure?: { code: string; message: string } } = {},
  ): Verdict {
    // Decide `allowed` from the outcome, failure policy and mode, in that order.
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
      durationMs: Math.max(0, performance.now() - started),
      decidedAt: now().toISOString(),
      ...(extra.failure ? { failure: extra.failure } : {}),
      ...(auditOnly ? { auditOnly } : {}),
    };
  }

  function failedVerdict(
    policy: CompiledPolicy,
    subject: Subject,
    started: number,
    err: EngineError,
    checks: SignatureCheck[],
  ) {
    return finish(
      policy,
      subject,
      started,
      "failed",
      [`ImagePolicy ${policy.name} could not verify ${imageLabel(subject)}: ${err.message}`],
      checks,
      { failure: { code: err.code, message: err.message } },
    );
  }

  async function runVerifier(
    v: CompiledVerifier,
    source: ArtifactSource,
    signal: AbortSignal,
  ): Promise<SignatureCheck[]> {
    const callOpts = { verifierName: v.name, now: now(), signal };
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

  /**
   * The revision part of the signature-results key. Results depend on the name only where a
   * verifier selects its options by the reference: a notation trust policy document picks
   * one trust policy per repository (registryScopes). Names that select the same trust
   * policies share results; a name that selects others never reuses them.
   */
  function resultRevision(subject: Subject, policy: CompiledPolicy): string {
    let scoped = false;
    const parts = policy.verifiers.map((v) => {
      if (v.kind !== "notation" || v.notation.trustPolicies.length === 0) return "";
      scoped = true;
      return selectTrustPolicy(v.notation.trustPolicies, subject.reference)?.name ?? "\u0000none";
    });
    return scoped ? `${policy.revision}#${JSON.stringify(parts)}` : policy.revision;
  }

  /** One full verification → signature results; never throws. Cached per digest × result revision. */
  async function run(subject: Subject, policy: CompiledPolicy, resultRev: string): Promise<SignatureResult> {
    counters.verifications++;
    const started = performance.now();
    const ac = new AbortController();
    const timer = setTimeout(
      () => ac.abort(new EngineError("TIMEOUT", `verification did not finish within ${budgetMs} ms`)),
      budgetMs,
    );
    timer.unref?.();
    const result: SignatureResult = {
      outcome: "failed",
      subject: { reference: subject.reference, digest: subject.digest },
      // The key's revision (resultRevision), which is what the cache files it under.
      policy: { name: policy.name, revision: resultRev },
      checks: [],
      decidedAt: "",
      durationMs: 0,
      cached: false,
    };
    try {
      const kinds = [
        ...(policy.verifiers.some((v) => v.kind === "notation") ? NOTATION_KINDS : []),
        ...(policy.verifiers.some((v) => v.kind === "cosign") ? COSIGN_KINDS : []),
      ];
      const source = await abortable(deps.discover(subject, { signal: ac.signal, kinds }), ac.signal);
      const results = await abortable(
        Promise.all(policy.verifiers.map((v) => runVerifier(v, source, ac.signal))),
        ac.signal,
      );
      // `checks` stays empty: perVerifier holds them, and the cache accounts each entry by
      // its JSON size, so a second copy would halve how many verdicts fit.
      result.perVerifier = results;
      const state = combine(
        policy,
        policy.verifiers.map((v, i) => summarise(v, results[i]!)),
      );
      result.outcome = state === "passed" ? "verified" : state === "failed" ? "rejected" : "failed";
      if (result.outcome === "verified" && policy.attest) {
        const j = await abortable(
          judgeAttestations(discoverAttestations, subject, policy, results.flat(), now(), ac.signal),
          ac.signal,
        );
        if (j.state === "passed") {
          result.attestation = { state: j.state, results: j.results, reasons: j.reasons };
          if (j.expiresAt) result.expiresAt = j.expiresAt.toISOString();
        } else {
          result.attestation = { state: j.state, results: j.results, reason: j.reason };
          result.outcome = j.state === "failed" ? "rejected" : "failed";
        }
      }
    } catch (e) {
      const err =
        ac.signal.aborted && ac.signal.reason instanceof EngineError ? ac.signal.reason : toEngineError(e);
      result.error = { code: err.code, message: err.message, transient: err.transient };
      result.outcome = err.transient ? "failed" : "rejected";
    } finally {
      clearTimeout(timer);
    }
    result.durationMs = Math.max(0, performance.now() - started);
    result.decidedAt = now().toISOString();
    // Not remembered: a refusal for capacity says nothing about the image, and a denial
    // reached with a caller-supplied descriptor may be that descriptor's fault (a wrong size
    // is malformed input, not a property of the digest). A pass with one implies it matched
    // what was signed.
    const descriptorDenial = subject.descriptor !== undefined && result.outcome !== "verified";
    if (result.error?.code !== "CAPACITY" && !descriptorDenial) cache.set(result, policy.cache);
    return result;
  }

  /** run() inside the bounds; work refused before it starts is a failed, uncached result. */
  function bounded(subject: Subject, policy: CompiledPolicy, resultRev: string): Promise<SignatureResult> {
    const limits = opts.limits;
    if (!limits) return run(subject, policy, resultRev);
    let registry = "";
    try {
      registry = parseReference(subject.reference).registry.toLowerCase();
    } catch {
      // verify() already refused unparsable references
    }
    return limits
      .run(registry, () => run(subject, policy, resultRev))
      .catch((e: unknown) => {
        const err = toEngineError(e);
        return {
          outcome: "failed",
          subject: { reference: subject.reference, digest: subject.digest },
          policy: { name: policy.name, revision: resultRev },
          checks: [],
          decidedAt: now().toISOString(),
          durationMs: 0,
          cached: false,
          error: { code: err.code, message: err.message, transient: err.transient },
        } satisfies SignatureResult;
      });
  }

  /** The verdict for `subject` (its own reference) from signature results. */
  function judgeSignatures(
    subject: Subject,
    policy: CompiledPolicy,
    started: number,
    sig: SignatureResult,
  ): Verdict {
    let v: Verdict;
    if (sig.error || !sig.perVerifier) {
      const err = new EngineError(
        (sig.error?.code ?? "INTERNAL") as EngineError["code"],
        sig.error?.message ?? "no signature results",
      );
      v = sig.error?.transient
        ? failedVerdict(policy, subject, started, err, sig.checks)
        : finish(
            policy,
            subject,
            started,
            "rejected",
            [`ImagePolicy ${policy.name} denies ${imageLabel(subject)}: ${err.message}`],
            sig.checks,
          );
    } else {
      // Verifier results carry no name (no policy verifier option depends on it); what
      // does — AnyOf/AllOf's reasons, Rego's input — is evaluated here, for this subject.
      const per = sig.perVerifier;
      const summaries = policy.verifiers.map((vf, i) => summarise(vf, per[i] ?? []));
      v = decide(subject, policy, started, summaries, per.flat());
      if (v.outcome === "verified" && sig.attestation)
        v = withAttestations(subject, policy, started, v, sig.attestation, sig.expiresAt);
    }
    return { ...v, cached: sig.cached, decidedAt: sig.decidedAt };
  }

  async function discoverAttestations(s: Subject, o: { signal?: AbortSignal }): Promise<AttestationSource> {
    if (deps.attestations) return deps.attestations(s, o);
    return {
      subject: s,
      envelopes: [],
      truncated: false,
      fetchBlob: () => Promise.reject(new Error("none")),
    };
  }

  /** Applies the cached attestation judgement to a verdict whose signatures passed. */
  function withAttestations(
    subject: Subject,
    policy: CompiledPolicy,
    started: number,
    verdict: Verdict,
    j: StoredJudgement,
    expiresAt: string | undefined,
  ): Verdict {
    if (j.state === "passed")
      return {
        ...verdict,
        reasons: [...verdict.reasons, ...j.reasons],
        attestations: j.results,
        ...(expiresAt ? { expiresAt } : {}),
      };
    const base =
      j.state === "error"
        ? failedVerdict(
            policy,
            subject,
            started,
            new EngineError("REGISTRY_UNAVAILABLE", j.reason),
            verdict.verifiers,
          )
        : finish(
            policy,
            subject,
            started,
            "rejected",
            [`ImagePolicy ${policy.name} denies ${imageLabel(subject)}: ${j.reason}`],
            verdict.verifiers,
          );
    return { ...base, attestations: j.results };
  }

  function decide(
    subject: Subject,
    policy: CompiledPolicy,
    started: number,
    summaries: VerifierSummary[],
    checks: SignatureCheck[],
  ): Verdict {
    const label = imageLabel(subject);
    const passed = summaries.filter((s) => s.state === "passed");
    const failed = summaries.filter((s) => s.state === "failed");
    const unknown = summaries.filter((s) => s.state === "indeterminate");
    const state = combine(policy, summaries);

    if (state === "indeterminate") {
      const first = unknown[0]!;
      const code = String(
        first.checks.find((c) => c.result === "error")?.details?.code ?? "REGISTRY_UNAVAILABLE",
      );
      const v = failedVerdict(
        policy,
        subject,
        started,
        new EngineError("REGISTRY_UNAVAILABLE", why(first)),
        checks,
      );
      return { ...v, failure: { code, message: why(first) } };
    }
    if (state === "failed") {
      const detail =
        policy.match === "AllOf"
          ? `verifier ${why(failed[0]!)}`
          : `no verifier accepted it (${summaries.map(why).join("; ")})`;
      return finish(
        policy,
        subject,
        started,
        "rejected",
        [`ImagePolicy ${policy.name} denies ${label}: ${detail}`],
        checks,
      );
    }
    const matchReason =
      policy.match === "AllOf"
        ? `verified by ${summaries.map(why).join("; ")}`
        : `verified by ${why(passed[0]!)}`;
    if (policy.rego) {
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
        return failedVerdict(policy, subject, started, toEngineError(e, "INVALID_POLICY"), checks);
      }
      if (!d.allow) {
        return finish(
          policy,
          subject,
          started,
          "rejected",
          [
            `ImagePolicy ${policy.name} denies ${label}: ${d.reasons.join("; ")}`,
            `signatures: ${matchReason}`,
          ],
          checks,
        );
      }
      return finish(
        policy,
        subject,
        started,
        "verified",
        [`ImagePolicy ${policy.name} allows ${label}: ${matchReason}`, ...d.reasons],
        checks,
      );
    }
    return finish(
      policy,
      subject,
      started,
      "verified",
      [`ImagePolicy ${policy.name} allows ${label}: ${matchReason}`],
      checks,
    );
  }

  function count(v: Verdict): Verdict {
    counters.outcomes[v.outcome]++;
    return v;
  }

  async function verify(subject: Subject, policy: CompiledPolicy, o: VerifyOptions = {}): Promise<Verdict> {
    const started = performance.now();
    if (!isSupportedDigest(subject.digest)) {
      throw new EngineError(
        "INVALID_REFERENCE",
        `subject digest ${JSON.stringify(subject.digest)} is not a sha256/sha512 digest`,
      );
    }
    if (typeof subject.reference !== "string" || subject.reference.length === 0) {
      throw new EngineError("INVALID_REFERENCE", "subject reference is empty");
    }
    const named = nameDecision(subject, policy, started);
    if (named) return count(named);
    const resultRev = resultRevision(subject, policy);
    const hit = cache.get(subject.digest, resultRev);
    if (hit) return count(judgeSignatures(subject, policy, started, hit));

    const key = cacheKey(subject.digest, resultRev);
    const { promise } = cache.shared(key, () => bounded(subject, policy, resultRev));
    const v = await waitWithin(
      promise.then((sig) => judgeSignatures(subject, policy, started, sig)),
      o,
      (err) => {
        counters.abandoned++;
        return failedVerdict(policy, subject, started, err, []);
      },
    );
    // Callers that joined someone else's verification get their own timing.
    return count({ ...v, durationMs: Math.max(0, performance.now() - started) });
  }

  /**
   * The decisions made from the name alone (exemptImages, images / unmatchedImages), on the
   * canonical identity of the reference actually used; undefined when signatures decide.
   */
  function nameDecision(subject: Subject, policy: CompiledPolicy, started: number): Verdict | undefined {
    const label = imageLabel(subject);
    const matchRef = canonicalReference(subject.reference);
    if (matchRef === undefined) {
      throw new EngineError(
        "INVALID_REFERENCE",
        `subject reference ${JSON.stringify(subject.reference.slice(0, 300))} is not a valid image name`,
      );
    }
    if (policy.isExempt(matchRef)) {
      return finish(
        policy,
        subject,
        started,
        "exempt",
        [`${label} is exempt by ImagePolicy ${policy.name} (spec.exemptImages)`],
        [],
      );
    }
    if (!policy.governs(matchRef)) {
      if (policy.unmatchedImages === "Allow") {
        return finish(
          policy,
          subject,
          started,
          "ungoverned",
          [
            `${label} is not governed by ImagePolicy ${policy.name} (spec.images) and unmatchedImages is Allow`,
          ],
          [],
        );
      }
      return finish(
        policy,
        subject,
        started,
        "rejected",
        [
          `ImagePolicy ${policy.name} denies ${label}: not matched by spec.images and unmatchedImages is Deny`,
        ],
        [],
      );
    }
    return undefined;
  }

  function cached(subject: Subject, policy: CompiledPolicy): Verdict | undefined {
    const started = performance.now();
    if (!isSupportedDigest(subject.digest) || typeof subject.reference !== "string") return undefined;
    let named: Verdict | undefined;
    try {
      named = nameDecision(subject, policy, started);
    } catch {
      return undefined; // verify() reports the invalid reference
    }
    if (named) return count(named);
    const hit = cache.get(subject.digest, resultRevision(subject, policy));
    return hit ? count(judgeSignatures(subject, policy, started, hit)) : undefined;
  }

  return {
    verify,
    cached,
    stats: () => ({ ...cache.stats(), ...counters, outcomes: { ...counters.outcomes } }),
    clearCache: () => cache.clear(),
  };
}

/** Waits for the shared promise, or answers with `onGiveUp` when this caller's signal/timeout fires. */
function waitWithin(
  shared: Promise<Verdict>,
  o: VerifyOptions,
  onGiveUp: (err: EngineError) => Verdict,
): Promise<Verdict> {
  if (!o.signal && o.timeoutMs === undefined) return shared;
  if (o.signal?.aborted)
    return Promise.resolve(onGiveUp(new EngineError("CANCELLED", "the caller cancelled the request")));
  return new Promise<Verdict>((resolve) => {
    let done = false;
    const settle = (v: Verdict) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
      resolve(v);
    };
    const onAbort = () => settle(onGiveUp(new EngineError("CANCELLED", "the caller cancelled the request")));
    const timer =
      o.timeoutMs !== undefined
        ? setTimeout(
            () =>
              settle(
                onGiveUp(
                  new EngineError(
                    "TIMEOUT",
                    `verification did not finish within the caller's ${o.timeoutMs} ms budget`,
                  ),
                ),
              ),
            o.timeoutMs,
          )
        : undefined;
    o.signal?.addEventListener("abort", onAbort, { once: true });
    shared.then(settle, (e) => settle(onGiveUp(toEngineError(e))));
  });
}

export { CACHE_DEFAULTS };
