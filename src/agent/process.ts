// Process-level safety net. A crash opens NRI's fail-open window (containerd creates
// containers without a dropped plugin) and CrashLoopBackOff keeps it open, so an error that
// escapes every handler is logged and the agent keeps serving. Every request path already
// turns its own errors into answers; these handlers catch what a library or a stray
// callback lets through.
import type { Logger } from "pino";

export interface ProcessLike {
  on(event: "unhandledRejection", fn: (reason: unknown) => void): unknown;
  on(event: "uncaughtException", fn: (err: Error, origin: string) => void): unknown;
  off(event: "unhandledRejection", fn: (reason: unknown) => void): unknown;
  off(event: "uncaughtException", fn: (err: Error, origin: string) => void): unknown;
}

/** Installs the handlers; returns a function that removes them. */
export function installProcessHandlers(
  log: Pick<Logger, "error">,
  onError?: (kind: "unhandledRejection" | "uncaughtException") => void,
  proc: ProcessLike = process,
): () => void {
  const describe = (e: unknown) =>
    e instanceof Error
      ? { err: e.message, stack: e.stack?.split("\n").slice(0, 8).join("\n") }
      : { err: String(e) };
  const rejection = (reason: unknown) => {
    log.error(describe(reason), "unhandled promise rejection; the agent keeps serving");
    onError?.("unhandledRejection");
  };
  const exception = (err: Error, origin: string) => {
    log.error({ ...describe(err), origin }, "uncaught exception; the agent keeps serving");
    onError?.("uncaughtException");
  };
  proc.on("unhandledRejection", rejection);
  proc.on("uncaughtException", exception);
  return () => {
    proc.off("unhandledRejection", rejection);
    proc.off("uncaughtException", exception);
  };
}
