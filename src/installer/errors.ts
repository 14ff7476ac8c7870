// Installer errors: a stable code (the CLI maps it to an exit code) and one sentence that
// says what to do.
import { TollgateError } from "../base/errors.js";

export type InstallErrorCode =
  /** Bad flags or option values. */
  | "USAGE"
  /** The verifier binary to install is missing or not a self-contained executable. */
  | "BAD_VERIFIER_BINARY"
  /** The agent configuration does not load. */
  | "BAD_AGENT_CONFIG"
  /** The host's containerd configuration cannot be read or merged. */
  | "BAD_CONTAINERD_CONFIG"
  /** Writing a file on the host failed. */
  | "WRITE_FAILED"
  /** The requested containerd restart failed. */
  | "RESTART_FAILED";

export class InstallError extends TollgateError<InstallErrorCode> {
  constructor(code: InstallErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "InstallError";
  }
}
