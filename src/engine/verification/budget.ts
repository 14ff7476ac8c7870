// Step: budget and limits. A shared verification runs inside the engine's bounds (limits.ts:
// global and per-registry concurrency and bytes); each caller waits only as long as its own
// signal / timeoutMs allow, and giving up never cancels the shared work.
import { EngineError, toEngineError } from "../errors.js";
import type { VerificationLimits } from "../limits.js";
import { parseReference } from "../reference.js";
import type { Subject, Verdict } from "../types.js";
import type { SignatureResult } from "./types.js";

export interface CallerBudget {
  /** Ends this caller's wait (not the shared verification). */
  signal?: AbortSignal;
  /** This caller's budget; when it runs out the failure policy answers and verification continues. */
  timeoutMs?: number;
}

/** `work` inside the bounds; work refused before it starts is answered by `refused`. */
export function withinLimits(
  limits: VerificationLimits | undefined,
  subject: Subject,
  work: () => Promise<SignatureResult>,
  refused: (err: EngineError) => SignatureResult,
): Promise<SignatureResult> {
  if (!limits) return work();
  let registry = "";
  try {
    registry = parseReference(subject.reference).registry.toLowerCase();
  } catch {
    // verify() already refused unparsable references
  }
  return limits.run(registry, work).catch((e: unknown) => refused(toEngineError(e)));
}

/** Waits for the shared promise, or answers with `onGiveUp` when this caller's signal/timeout fires. */
export function waitWithin(
  shared: Promise<Verdict>,
  o: CallerBudget,
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
