// The shared verification (one per digest × result revision, whoever asked): discover the
// signature artifacts once, run every verifier over them, combine, and — when the signatures
// passed — judge spec.attestations / spec.conditions. Name-independent, so it is cacheable.
import { type AttestationSource, judgeAttestations, requestVars } from "../attest/index.js";
import { abortable } from "../abortable.js";
import { EngineError, toEngineError } from "../errors.js";
import type { CompiledPolicy } from "../policy/model.js";
import { withTrustedRoots } from "../sigstore-trust/resolve.js";
import type { TrustedRootResolver } from "../sigstore-trust/types.js";
import type { Subject } from "../types.js";
import { artifactKinds, runVerifier } from "./checks.js";
import { combine, summariseAll } from "./combine.js";
import type { EngineDeps, SignatureResult } from "./types.js";

export interface RunOptions {
  now: () => Date;
  /** Budget of the whole run; on expiry it stops with a transient TIMEOUT. */
  budgetMs: number;
  /** Where keyless verifiers whose trusted root comes from TUF get it (sigstore-trust/). */
  trustedRoots?: TrustedRootResolver;
}

/** One full verification → signature results, filed under `resultRev`; never throws. */
export async function verifySignatures(
  deps: EngineDeps,
  subject: Subject,
  given: CompiledPolicy,
  resultRev: string,
  { now, budgetMs, trustedRoots }: RunOptions,
): Promise<SignatureResult> {
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
    policy: { name: given.name, revision: resultRev },
    checks: [],
    decidedAt: "",
    durationMs: 0,
    cached: false,
  };
  try {
    // The TUF-held trusted root, put in place for the keyless verifiers that name it.
    const policy = await abortable(withTrustedRoots(given, trustedRoots, ac.signal), ac.signal);
    const source = await abortable(
      deps.discover(subject, { signal: ac.signal, kinds: artifactKinds(policy) }),
      ac.signal,
    );
    const results = await abortable(
      Promise.all(policy.verifiers.map((v) => runVerifier(deps, v, source, ac.signal, now()))),
      ac.signal,
    );
    // `checks` stays empty: perVerifier holds them, and the cache accounts each entry by
    // its JSON size, so a second copy would halve how many verdicts fit.
    result.perVerifier = results;
    const state = combine(policy, summariseAll(policy, results));
    result.outcome = state === "passed" ? "verified" : state === "failed" ? "rejected" : "failed";
    if (result.outcome === "verified" && policy.attest) {
      const discover = (s: Subject, o: { signal?: AbortSignal }) => discoverAttestations(deps, s, o);
      const j = await abortable(
        judgeAttestations(discover, subject, policy, results.flat(), requestVars(subject), now(), ac.signal),
        ac.signal,
      );
      if (j.state === "per-request") {
        result.attestationEvidence = j.evidence;
        result.outcome = j.outcome;
      } else if (j.state === "passed") {
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
  return result;
}

/** The result of a verification refused before it started (limits.ts); never cached. */
export function refusedResult(
  subject: Subject,
  policy: CompiledPolicy,
  resultRev: string,
  err: EngineError,
  now: Date,
): SignatureResult {
  return {
    outcome: "failed",
    subject: { reference: subject.reference, digest: subject.digest },
    policy: { name: policy.name, revision: resultRev },
    checks: [],
    decidedAt: now.toISOString(),
    durationMs: 0,
    cached: false,
    error: { code: err.code, message: err.message, transient: err.transient },
  };
}

/**
 * Whether a finished result may be cached. Not remembered: a refusal for capacity says
 * nothing about the image, and a denial reached with a caller-supplied descriptor may be that
 * descriptor's fault (a wrong size is malformed input, not a property of the digest). A pass
 * with one implies it matched what was signed.
 */
export function cacheable(subject: Subject, result: SignatureResult): boolean {
  const descriptorDenial = subject.descriptor !== undefined && result.outcome !== "verified";
  return result.error?.code !== "CAPACITY" && !descriptorDenial;
}

async function discoverAttestations(
  deps: EngineDeps,
  s: Subject,
  o: { signal?: AbortSignal },
): Promise<AttestationSource> {
  if (deps.attestations) return deps.attestations(s, o);
  return {
    subject: s,
    envelopes: [],
    truncated: false,
    fetchBlob: () => Promise.reject(new Error("none")),
  };
}
