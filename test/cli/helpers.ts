// Runs the real CLI bundle as a child process. Each test file bundles src/cli/main.ts with
// the same esbuild settings as scripts/build.mjs into a private temp dir, so the tests never
// race other builds writing dist/.
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { repoRoot } from "../support/tools.js";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function buildCli(): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-cli-"));
  const out = path.join(dir, "tollgate.mjs");
  await build({
    entryPoints: [path.join(repoRoot, "src/cli/main.ts")],
    outfile: out,
    bundle: true,
    platform: "node",
    target: "node24",
    format: "esm",
    banner: {
      js: "import { createRequire as __tgCreateRequire } from 'node:module'; const require = __tgCreateRequire(import.meta.url);",
    },
    logLevel: "error",
  });
  return out;
}

/** Environment without TOLLGATE_* (a developer's settings must not leak into the tests). */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("TOLLGATE_")) env[k] = v;
  return { ...env, ...extra };
}

export function runCli(
  bundle: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [bundle, ...args],
      {
        env: opts.env ?? cleanEnv(),
        timeout: opts.timeoutMs ?? 90_000,
        maxBuffer: 8 << 20,
        encoding: "utf8",
      },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") {
          reject(new Error(`tollgate ${args.join(" ")}: ${err.message}\n${stderr}`));
          return;
        }
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
    // Standard input: the given text, else closed at once (never the test runner's own).
    child.stdin?.end(opts.input ?? "");
  });
}
