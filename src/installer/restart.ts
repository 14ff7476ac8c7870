// Whether and how containerd picks up the drop-in. containerd reads its configuration only
// at start (there is no reload), so a changed drop-in needs a restart. Restarting
// containerd keeps running containers running (their shims outlive it) but makes CRI
// unavailable for a few seconds on that node, and a DaemonSet rollout would do it on every
// node at once. That is the operator's call, so the default is to NOT restart and to print
// the one command to run; the other strategies are opt-in:
//   none       print what to do (default)
//   signal     SIGTERM to the containerd process and let its service manager start it again
//              (systemd's containerd.service has Restart=always); needs the host PID
//              namespace. Refuses unless exactly one containerd process is found.
//   systemctl  `systemctl restart <unit>` on the host (through `nsenter -t 1` when the
//              installer runs in a container: needs hostPID and privileges).
// Nothing restarts when the drop-in did not change, so a restarted installer pod never
// restarts containerd again.
import { errorMessage } from "../base/errors.js";
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { InstallError } from "./errors.js";

export type RestartStrategy = "none" | "signal" | "systemctl";
export const RESTART_STRATEGIES: readonly RestartStrategy[] = ["none", "signal", "systemctl"];

export interface RestartOptions {
  strategy: RestartStrategy;
  /** Host root the installer writes to; "/" means the installer runs on the host itself. */
  hostRoot: string;
  /** signal: the containerd pid (else found in /proc). */
  containerdPid?: number;
  /** systemctl: the unit (default containerd.service). */
  unit?: string;
  /** signal: how long to wait for the old process to exit. */
  waitMs?: number;
  /** For tests: the /proc to scan. */
  procDir?: string;
}

export interface RestartResult {
  strategy: RestartStrategy;
  done: boolean;
  message: string;
}

const run = promisify(execFile);

export async function restartContainerd(o: RestartOptions, needed: boolean): Promise<RestartResult> {
  const unit = o.unit ?? "containerd.service";
  if (!needed)
    return {
      strategy: o.strategy,
      done: false,
      message: "containerd configuration unchanged: no restart needed",
    };
  if (o.strategy === "none")
    return {
      strategy: "none",
      done: false,
      message: `containerd reads its configuration only at start: run \`systemctl restart ${unit}\` on the node when convenient (running containers keep running; CRI is unavailable for a few seconds). Until then pulls and container creations are NOT checked by Tollgate unless containerd already had the same settings.`,
    };
  if (o.strategy === "signal") {
    const pid = o.containerdPid ?? findContainerd(o.procDir ?? "/proc");
    try {
      process.kill(pid, "SIGTERM");
    } catch (e) {
      throw new InstallError(
        "RESTART_FAILED",
        `cannot signal containerd (pid ${pid}): ${errorMessage(e)}`,
        {
          cause: e,
        },
      );
    }
    const deadline = Date.now() + (o.waitMs ?? 30_000);
    while (alive(pid)) {
      if (Date.now() > deadline)
        throw new InstallError(
          "RESTART_FAILED",
          `containerd (pid ${pid}) did not exit within ${o.waitMs ?? 30_000} ms of SIGTERM`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      strategy: "signal",
      done: true,
      message: `sent SIGTERM to containerd (pid ${pid}) and it exited; its service manager must start it again (systemd Restart=always)`,
    };
  }
  const inContainer = path.resolve(o.hostRoot) !== "/";
  const [cmd, args] = inContainer
    ? [
        "nsenter",
        ["--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--", "systemctl", "restart", unit],
      ]
    : ["systemctl", ["restart", unit]];
  try {
    await run(cmd, args as string[], { timeout: 120_000 });
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new InstallError(
      "RESTART_FAILED",
      `\`${cmd} ${(args as string[]).join(" ")}\` failed: ${(err.stderr || err.message).trim()}`,
      { cause: e },
    );
  }
  return { strategy: "systemctl", done: true, message: `restarted ${unit} with systemctl` };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie has exited; its parent reaps it.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

/** The one process whose executable is named `containerd`. */
export function findContainerd(procDir: string): number {
  const found: number[] = [];
  for (const name of readdirSync(procDir)) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const exe = readlinkSync(path.join(procDir, name, "exe")).replace(/ \(deleted\)$/, "");
      if (path.basename(exe) === "containerd") found.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  if (found.length !== 1)
    throw new InstallError(
      "RESTART_FAILED",
      found.length === 0
        ? "no containerd process found (the installer needs the host PID namespace for --restart signal)"
        : `found ${found.length} containerd processes (${found.join(", ")}): pass --containerd-pid`,
    );
  return found[0]!;
}
