// Waiting on a promise that this caller may give up on. Used for work shared by several
// callers (a verification, a token request, a credential lookup): one caller giving up must
// not cancel the work for the others, so only the wait is abortable.
import { EngineError } from "./errors.js";

/**
 * Resolves like `p`, or rejects as soon as `signal` aborts, even if `p` ignores the signal.
 * The rejection is `signal.reason`, or CANCELLED with `reason: "cancelled"`. No signal: `p`.
 */
export function abortable<T>(
  p: Promise<T>,
  signal: AbortSignal | undefined,
  reason: "signal" | "cancelled" = "signal",
): Promise<T> {
  if (!signal) return p;
  const why = () => (reason === "signal" ? signal.reason : new EngineError("CANCELLED", "request cancelled"));
  if (signal.aborted) return Promise.reject(why());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(why());
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
