// Child processes for the benchmarks: bundling a TypeScript entry into one .mjs with the
// project's esbuild options (so children run on plain `node`, never through tsx), and
// wall-clock timing of a process from spawn to exit.
import { spawn } from "node:child_process";
import { accessSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";
import { repoRoot } from "../../test/support/tools.js";

/** The banner scripts/build.mjs uses (CommonJS dependencies bundled into ESM call require()). */
const BANNER =
  "#!/usr/bin/env node\nimport { createRequire as __tgCreateRequire } from 'node:module'; const require = __tgCreateRequire(import.meta.url);";

/** utime + stime of a process (all its threads) in ms (/proc/<pid>/stat, clock ticks of 10 ms). */
export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** Bundles `entry` (relative to the repo) into `<outDir>/<name>.mjs`; returns its path. */
export async function bundle(entry: string, outDir: string, name: string): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const outfile = path.join(outDir, `${name}.mjs`);
  await build({
    entryPoints: { [name]: path.join(repoRoot, entry) },
    outdir: outDir,
    outExtension: { ".js": ".mjs" },
    // Split as scripts/build.mjs splits the agent: what is imported only when used stays unloaded.
    splitting: true,
    chunkNames: `${name}-chunks/[name]-[hash]`,
    bundle: true,
    platform: "node",
    target: "node24",
    format: "esm",
    legalComments: "none",
    // As scripts/build.mjs: the children must load like the shipped bundles (memory).
    minifyWhitespace: true,
    minifySyntax: true,
    banner: { js: BANNER },
    logLevel: "warning",
  });
  return outfile;
}

export interface ProcResult {
  /** Wall time from spawn() to the 'exit' event, in ms. */
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a process to completion and times it (stdin written at once, then closed). */
export function timeProcess(
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("exit", (code) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      // Let the pipes drain so stdout is complete.
      setImmediate(() => resolve({ ms, code, stdout, stderr }));
    });
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
  });
}

/** Runs a child that prints one JSON line (its result) as the last line of stdout. */
export async function runJsonChild<T>(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<T> {
  const r = await timeProcess(cmd, args, {
    timeoutMs: opts.timeoutMs ?? 600_000,
    env: opts.env,
    input: opts.input,
  });
  const last = r.stdout.trim().split("\n").pop() ?? "";
  if (r.code !== 0)
    throw new Error(
      `${path.basename(args[args.length - 1] ?? cmd)} exited ${r.code}: ${r.stderr.slice(-2000)}`,
    );
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`child printed no JSON result: ${r.stdout.slice(-500)} ${r.stderr.slice(-1500)}`);
  }
}

/** `taskset -c <cpu>` prefix when taskset exists (pins a child to one core). */
export function pinned(cpu: number, cmd: string, args: string[]): { cmd: string; args: string[] } {
  for (const t of ["/usr/bin/taskset", "/bin/taskset"]) {
    try {
      accessSync(t);
      return { cmd: t, args: ["-c", String(cpu), cmd, ...args] };
    } catch {}
  }
  return { cmd, args };
}

export const GNU_TIME = "/usr/bin/time";

/**
 * Peak resident memory (KiB, the kernel's ru_maxrss) of one run of a process, read through
 * GNU time (`time -f %M`, Debian package "time"); undefined when that is not installed.
 */
export async function peakRssKiB(
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ kib: number; code: number | null; stdout: string } | undefined> {
  try {
    accessSync(GNU_TIME);
  } catch {
    return undefined;
  }
  const r = await timeProcess(GNU_TIME, ["-f", "tollgate-peak-rss-kib=%M", cmd, ...args], opts);
  const m = /tollgate-peak-rss-kib=(\d+)/.exec(r.stderr);
  if (!m) throw new Error(`GNU time printed no peak RSS: ${r.stderr.slice(-300)}`);
  return { kib: Number(m[1]), code: r.code, stdout: r.stdout };
}
