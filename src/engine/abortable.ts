// Waiting on work shared by several callers (a token request, a credential lookup): one
// caller giving up must not cancel the work for the others, so only the wait is abortable.
import { EngineError } from "../errors.js";

/** Resolves like `p`, or rejects with CANCELLED as soon as `signal` aborts. */
export function waitShared<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new EngineError("CANCELLED", "request cancelled"));
    if (signal.aborted) return onAbort();
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
