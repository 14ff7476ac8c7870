// The engine's single entry point: (subject, compiled policy) → Verdict.
//
//   exempt image        → outcome "exempt", allowed
//   not governed        → spec.unmatchedImages: Allow → "ungoverned"; Deny → "rejected"
//   cache hit           → the cached verdict (cached: true)
//   otherwise           → one shared verification per digest × revision (single flight):
//                         discover signature artifacts once, run every verifier over them,
//                         combine (AnyOf/AllOf), then the optional Rego gate.
//
// "Could not complete" (transient EngineError, or a verifier that reported only "error"
// checks where a definitive answer was needed) → outcome "failed", allowed per
// failurePolicy. A missing or invalid signature is a verdict ("rejected"), never a failure.
// Mode Audit turns every denial into allowed + auditOnly.
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
import { EngineError, isEngineError, toEngineError } from "./errors.js";
import type {
  CompiledPolicy,
  CompiledVerifier,
  CosignConfig,
  NotationConfig,
  RegoInput,
} from "./policy/model.js";
import { normalizeReference } from "./reference.js";
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
  /** The cached verdict for digest × policy revision, if any (no verification). */
  cached(digest: string, policy: CompiledPolicy): Verdict | undefined;
  stats(): EngineStats;
  /** Drops every cached verdict (in-flight verifications still finish). */
  clearCache(): void;
}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/;
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

export function createEngineCore(deps: EngineDeps, opts: CoreOptions = {}): Engine {
  const now = opts.now ?? (() => new Date());
  const cache = new VerdictCache({ now: () => now().getTime(), ...opts.cache });
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

  /** One full verification; never throws (every problem becomes a verdict). */
  async function run(subject: Subject, policy: CompiledPolicy): Promise<Verdict> {
    counters.verifications++;
    const started = performance.now();
    const ac = new AbortController();
    const timer = setTimeout(
      () => ac.abort(new EngineError("TIMEOUT", `verification did not finish within ${budgetMs} ms`)),
      budgetMs,
    );
    timer.unref?.();
    let checks: SignatureCheck[] = [];
    let verdict: Verdict;
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
      const summaries = policy.verifiers.map((v, i) => summarise(v, results[i]!));
      checks = summaries.flatMap((s) => s.checks);
      verdict = decide(subject, policy, started, summaries, checks);
    } catch (e) {
      const err =
        ac.signal.aborted && ac.signal.reason instanceof EngineError ? ac.signal.reason : toEngineError(e);
      if (err.transient) verdict = failedVerdict(policy, subject, started, err, checks);
      else
        verdict = finish(
          policy,
          subject,
          started,
          "rejected",
          [`ImagePolicy ${policy.name} denies ${imageLabel(subject)}: ${err.message}`],
          checks,
        );
    } finally {
      clearTimeout(timer);
    }
    cache.set(verdict, policy.cache);
    return verdict;
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
    let state: VerifierState;
    if (policy.match === "AllOf")
      state = failed.length > 0 ? "failed" : unknown.length > 0 ? "indeterminate" : "passed";
    else state = passed.length > 0 ? "passed" : unknown.length > 0 ? "indeterminate" : "failed";

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
    if (!DIGEST_RE.test(subject.digest)) {
      throw new EngineError(
        "INVALID_REFERENCE",
        `subject digest ${JSON.stringify(subject.digest)} is not a sha256/sha512 digest`,
      );
    }
    if (typeof subject.reference !== "string" || subject.reference.length === 0) {
      throw new EngineError("INVALID_REFERENCE", "subject reference is empty");
    }
    const label = imageLabel(subject);
    // Patterns match normalised references; normalise here too, so "acme/app" cannot slip
    // past a pattern written as "docker.io/acme/**".
    let matchRef: string;
    try {
      matchRef = normalizeReference(subject.reference);
    } catch (e) {
      if (isEngineError(e) && e.code === "INVALID_REFERENCE") throw e;
      throw new EngineError(
        "INVALID_REFERENCE",
        `subject reference ${JSON.stringify(subject.reference)} is not valid`,
        {
          cause: e,
        },
      );
    }
    if (policy.isExempt(matchRef)) {
      return count(
        finish(
          policy,
          subject,
          started,
          "exempt",
          [`${label} is exempt by ImagePolicy ${policy.name} (spec.exemptImages)`],
          [],
        ),
      );
    }
    if (!policy.governs(matchRef)) {
      if (policy.unmatchedImages === "Allow") {
        return count(
          finish(
            policy,
            subject,
            started,
            "ungoverned",
            [
              `${label} is not governed by ImagePolicy ${policy.name} (spec.images) and unmatchedImages is Allow`,
            ],
            [],
          ),
        );
      }
      return count(
        finish(
          policy,
          subject,
          started,
          "rejected",
          [
            `ImagePolicy ${policy.name} denies ${label}: not matched by spec.images and unmatchedImages is Deny`,
          ],
          [],
        ),
      );
    }
    const hit = cache.get(subject.digest, policy.revision);
    if (hit) {
      return count({
        ...hit,
        subject: { reference: subject.reference, digest: subject.digest },
        durationMs: Math.max(0, performance.now() - started),
      });
    }

    const key = cacheKey(subject.digest, policy.revision);
    const { promise } = cache.shared(key, () => run(subject, policy));
    const v = await waitWithin(promise, o, (err) => {
      counters.abandoned++;
      return failedVerdict(policy, subject, started, err, []);
    });
    // Callers that joined someone else's verification get their own subject and timing.
    return count({
      ...v,
      subject: { reference: subject.reference, digest: subject.digest },
      durationMs: Math.max(0, performance.now() - started),
    });
  }

  return {
    verify,
    cached: (digest, policy) => cache.get(digest, policy.revision),
    stats: () => ({ ...cache.stats(), ...counters, outcomes: { ...counters.outcomes } }),
    clearCache: () => cache.clear(),
  };
}

/** Rejects as soon as `signal` aborts, even if `p` ignores the signal. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
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
