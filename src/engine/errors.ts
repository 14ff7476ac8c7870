// Typed errors: every failure that crosses a module boundary is an EngineError with a
// stable code (for metrics, tests and the failure policy) and one human sentence.
import { errorMessage, TollgateError } from "../base/errors.js";

export type ErrorCode =
  // input the caller gave us
  | "INVALID_REFERENCE"
  | "INVALID_POLICY"
  | "INVALID_CONFIG"
  // the registry and the network (transient: the failure policy decides)
  | "REGISTRY_UNAVAILABLE"
  | "REGISTRY_TIMEOUT"
  | "REGISTRY_AUTH"
  | "REGISTRY_ERROR"
  | "NOT_FOUND"
  // content that does not match what was asked for, or breaks a cap
  | "DIGEST_MISMATCH"
  | "TOO_LARGE"
  | "TOO_MANY"
  | "MALFORMED"
  | "UNSUPPORTED"
  // signature verification results that are errors rather than verdicts
  | "REVOCATION_UNAVAILABLE"
  | "CANCELLED"
  // a caller's time budget ran out before the verification finished
  | "TIMEOUT"
  // the agent's bounds on concurrent verifications / bytes held were reached (limits.ts)
  | "CAPACITY"
  // no verified Sigstore trusted root could be had from its TUF mirror or cache
  | "TRUST_ROOT_UNAVAILABLE"
  | "INTERNAL";

/** Codes for which a verification "could not complete" (failure policy applies). */
export const TRANSIENT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "REGISTRY_UNAVAILABLE",
  "REGISTRY_TIMEOUT",
  // No or wrong credentials say nothing about the signatures: the failure policy decides,
  // and the reason says authentication failed (never "unsigned").
  "REGISTRY_AUTH",
  "REGISTRY_ERROR",
  "REVOCATION_UNAVAILABLE",
  "CANCELLED",
  "TIMEOUT",
  "CAPACITY",
  "TRUST_ROOT_UNAVAILABLE",
  "INTERNAL",
]);

export class EngineError extends TollgateError<ErrorCode> {
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, opts);
    this.name = "EngineError";
    this.details = opts.details;
  }

  get transient(): boolean {
    return TRANSIENT_CODES.has(this.code);
  }
}

export function isEngineError(e: unknown): e is EngineError {
  return e instanceof EngineError;
}

/** Wraps anything thrown into an EngineError without losing the original as `cause`. */
export function toEngineError(e: unknown, fallback: ErrorCode = "INTERNAL"): EngineError {
  if (e instanceof EngineError) return e;
  if (e instanceof Error && e.name === "AbortError")
    return new EngineError("CANCELLED", "operation was cancelled", { cause: e });
  return new EngineError(fallback, errorMessage(e), { cause: e });
}
