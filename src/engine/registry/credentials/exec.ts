// Runs a credential plugin (kubelet exec plugin, docker-credential-<name>): no shell, input
// on stdin, bounded in time and output, every way it can fail a typed REGISTRY_AUTH error
// that names the plugin and never repeats its output (which may hold secrets).
import { spawn } from "node:child_process";
import { EngineError } from "../../errors.js";
import { DEFAULT_PLUGIN_LIMITS } from "./spec.js";

export interface ExecLimits {
  timeoutMs: number;
  maxOutputBytes: number;
}

export const DEFAULT_EXEC_LIMITS: ExecLimits = DEFAULT_PLUGIN_LIMITS;

export type ExecFailure =
  | "not-found"
  | "not-executable"
  | "timeout"
  | "too-large"
  | "exit"
  | "signal"
  | "spawn";

export interface ExecResult {
  stdout: Buffer;
  /** The first line of stderr, at most 200 characters (for messages a plugin means to show). */
  stderrLine: string;
  exitCode: number;
}

export interface ExecOptions extends ExecLimits {
  file: string;
  args: readonly string[];
  input: string;
  env?: NodeJS.ProcessEnv;
  /** How the plugin is named in errors ("kubelet credential provider ecr"). */
  label: string;
  signal?: AbortSignal;
  /** Resolve on a non-zero exit too (docker helpers report "not found" that way). */
  allowNonZeroExit?: boolean;
}

function fail(kind: ExecFailure, message: string, cause?: unknown): EngineError {
  return new EngineError("REGISTRY_AUTH", message, {
    details: { execFailure: kind },
    ...(cause !== undefined ? { cause } : {}),
  });
}

/** Runs the plugin; resolves only on exit status 0 within the limits. */
export function runPlugin(o: ExecOptions): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = "";
    const child = spawn(o.file, [...o.args], {
      env: o.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
      // Its own process group, so a plugin that forks dies with it on timeout.
      detached: true,
    });
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
    };
    const finish = (e: EngineError | undefined, r?: ExecResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
      if (e) {
        killGroup();
        reject(e);
      } else resolve(r!);
    };
    const timer = setTimeout(
      () => finish(fail("timeout", `${o.label} did not answer within ${o.timeoutMs} ms`)),
      o.timeoutMs,
    );
    const onAbort = () => finish(new EngineError("CANCELLED", `${o.label}: request cancelled`));
    o.signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") finish(fail("not-found", `${o.label}: ${o.file} does not exist`, e));
      else if (e.code === "EACCES")
        finish(fail("not-executable", `${o.label}: ${o.file} is not executable`, e));
      else finish(fail("spawn", `${o.label}: cannot start ${o.file}: ${e.message}`, e));
    });
    child.stdout.on("data", (b: Buffer) => {
      outBytes += b.length;
      if (outBytes > o.maxOutputBytes) {
        finish(fail("too-large", `${o.label} wrote more than ${o.maxOutputBytes} bytes`));
        return;
      }
      out.push(b);
    });
    child.stderr.on("data", (b: Buffer) => {
      if (err.length < 4096) err += b.toString("utf8");
    });
    child.on("close", (code, sig) => {
      const line = (err.split("\n").find((l) => l.trim() !== "") ?? "").trim().slice(0, 200);
      if (sig) finish(fail("signal", `${o.label} was killed by ${sig}`));
      else if (code !== 0 && !o.allowNonZeroExit)
        finish(fail("exit", `${o.label} failed (exit status ${code})${line ? `: ${line}` : ""}`));
      else finish(undefined, { stdout: Buffer.concat(out), stderrLine: line, exitCode: code ?? 0 });
    });
    // A plugin that exits without reading stdin makes the write fail with EPIPE: its exit
    // status is what matters.
    child.stdin.on("error", () => {});
    child.stdin.end(o.input);
  });
}
