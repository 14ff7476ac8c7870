// Daemons started by tests: each one is recorded by pid and stopped by that pid only.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, constants, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";

export interface Daemon {
  name: string;
  pid: number;
  logFile: string;
  child: ChildProcess;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  logDir: string;
  /** Put the daemon in its own process group, so stop() reaches its children too. */
  group?: boolean;
  /**
   * stdout into a FIFO that `cat` copies to the log file, as a container's stdout reaches
   * containerd's shim (the benchmarks measure the agent as it runs on a node).
   */
  fifoStdout?: boolean;
}

export function startDaemon(name: string, cmd: string, args: string[], opts: StartOptions): Daemon {
  mkdirSync(opts.logDir, { recursive: true });
  const logFile = path.join(opts.logDir, `${name}.log`);
  // The daemon writes its log file itself: piping through this process would stall the
  // daemon (a full 64 KB pipe) whenever a test blocks the event loop in execFileSync.
  const log = openSync(logFile, "a");
  let out = log;
  let relay: ChildProcess | undefined;
  if (opts.fifoStdout) {
    const fifo = path.join(opts.logDir, `${name}.stdout`);
    rmSync(fifo, { force: true });
    execFileSync("mkfifo", [fifo]);
    relay = spawn("cat", [fifo], { stdio: ["ignore", log, log] });
    // Read-write, so this open does not wait for cat's; cat sees EOF once the daemon exits.
    out = openSync(fifo, constants.O_RDWR);
  }
  const child = spawn(cmd, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ["ignore", out, log],
    detached: opts.group ?? false,
  });
  closeSync(log);
  if (out !== log) closeSync(out);
  if (child.pid === undefined) throw new Error(`failed to start ${name} (${cmd})`);
  const pid = child.pid;
  // The log file is complete once the relay has copied the last line (bounded: a child the
  // daemon left behind may still hold the FIFO open).
  const relayDone = async () => {
    if (!relay || relay.exitCode !== null) return;
    const exit = new Promise<void>((resolve) => relay.once("exit", () => resolve()));
    const timer = setTimeout(() => relay.kill(), 5000);
    await exit;
    clearTimeout(timer);
  };
  let exited = child.exitCode !== null;
  const exitPromise = new Promise<void>((resolve) => {
    child.once("exit", () => {
      exited = true;
      resolve();
    });
  });
  return {
    name,
    pid,
    logFile,
    child,
    async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 5000) {
      if (exited) {
        await relayDone();
        return;
      }
      const target = opts.group ? -pid : pid;
      try {
        process.kill(target, signal);
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(target, "SIGKILL");
        } catch {}
      }, graceMs);
      await exitPromise;
      clearTimeout(timer);
      await relayDone();
    },
  };
}

/**
 * The JSON lines in a daemon's log file so far. Complete lines only: the daemon, or the relay
 * copying its stdout, may be in the middle of the next one.
 */
export function jsonLogRecords(logFile: string): Array<Record<string, unknown>> {
  const text = readFileSync(logFile, "utf8");
  return text
    .slice(0, text.lastIndexOf("\n") + 1)
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
