// Pull verifier start-up: wall time of one `node dist/tollgate-verify.mjs` process (the
// binary containerd's bindir verifier runs per pull) answered from the agent's verdict
// cache, against `node -e 0`, interleaved in the same run. Also explains where the time
// goes: esbuild metafile of the verifier bundle (bytes per input group) and the same entry
// built with code splitting (dynamic imports in their own chunks), timed alongside.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { build, type Metafile } from "esbuild";
import { repoRoot } from "../test/support/tools.js";
import { startBenchAgent } from "./lib/agent.js";
import { type BenchContext, iterations } from "./lib/context.js";
import { policyDoc } from "./lib/fixtures.js";
import { timeProcess } from "./lib/proc.js";
import type { BenchOutcome } from "./lib/report.js";
import { fmtMs, fmtRatio, fmtSummary, type Summary, summarize } from "./lib/stats.js";

export const TARGET_RATIO = 1.5;
const BANNER =
  "#!/usr/bin/env node\nimport { createRequire as __tgCreateRequire } from 'node:module'; const require = __tgCreateRequire(import.meta.url);";

/** Groups bundle inputs: node_modules/<pkg>, else the first two path segments under src/. */
function groupOf(input: string): string {
  const nm = input.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = input.slice(nm + "node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const parts = input.split("/");
  const i = parts.indexOf("src");
  return i >= 0 ? parts.slice(i, Math.min(parts.length - 1, i + 3)).join("/") : input;
}

/**
 * Rebuilds the verifier twice with the project's esbuild options: as scripts/build.mjs does
 * (code splitting, for its metafile: which chunk is loaded when) and as one file without
 * splitting (the "everything parsed up front" reference, timed alongside).
 */
async function analyse(outDir: string): Promise<{ split: Metafile; single: Metafile; singleEntry: string }> {
  const common = {
    entryPoints: { "tollgate-verify": path.join(repoRoot, "src/pull-verifier/main.ts") },
    bundle: true,
    platform: "node" as const,
    target: "node24",
    format: "esm" as const,
    legalComments: "none" as const,
    banner: { js: BANNER },
    logLevel: "warning" as const,
    outExtension: { ".js": ".mjs" },
    metafile: true,
  };
  const single = await build({ ...common, outdir: path.join(outDir, "single") });
  const split = await build({
    ...common,
    outdir: path.join(outDir, "split"),
    splitting: true,
    chunkNames: "verify-chunks/[name]-[hash]",
  });
  return {
    split: split.metafile!,
    single: single.metafile!,
    singleEntry: path.join(outDir, "single", "tollgate-verify.mjs"),
  };
}

/** Output files statically reachable from `from` (loaded together with it). */
function staticClosure(meta: Metafile, from: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = [...from];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (seen.has(f) || !meta.outputs[f]) continue;
    seen.add(f);
    for (const i of meta.outputs[f]!.imports)
      if (i.kind === "import-statement" && !i.external) todo.push(i.path);
  }
  return seen;
}

function topGroups(meta: Metafile, files: Iterable<string>, n: number): string {
  const groups = new Map<string, number>();
  for (const f of files)
    for (const [input, v] of Object.entries(meta.outputs[f]?.inputs ?? {}))
      groups.set(groupOf(input), (groups.get(groupOf(input)) ?? 0) + v.bytesInOutput);
  return [...groups.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([g, b]) => `\`${g}\` ${(b / 1024).toFixed(0)} KB`)
    .join(", ");
}

function breakdown(meta: Metafile): string[] {
  const outs = Object.keys(meta.outputs).filter((f) => f.endsWith(".mjs"));
  const entry = outs.find((f) => path.basename(f) === "tollgate-verify.mjs")!;
  const always = staticClosure(meta, [entry]);
  // Dynamic imports of the fast path: the config loader (when TOLLGATE_AGENT_SOCKET is not
  // set) and the in-process fallback (only when the agent is unreachable).
  const dyn = [...always].flatMap((f) => meta.outputs[f]!.imports.filter((i) => i.kind === "dynamic-import"));
  const bytes = (fs: Iterable<string>) => [...fs].reduce((a, f) => a + (meta.outputs[f]?.bytes ?? 0), 0);
  const rows: string[] = [];
  rows.push(
    `| always (entry + its static imports) | ${(bytes(always) / 1024).toFixed(0)} KB | ${topGroups(meta, always, 4)} |`,
  );
  for (const d of dyn) {
    const closure = [...staticClosure(meta, [d.path])].filter((f) => !always.has(f));
    const what = Object.keys(meta.outputs[d.path]?.inputs ?? {}).some((i) => i.includes("agent/config"))
      ? '`import("../agent/config.js")` — read the config file (socket path, timeouts) unless TOLLGATE_AGENT_SOCKET is set'
      : Object.keys(meta.outputs[d.path]?.inputs ?? {}).some((i) => i.includes("pull-verifier/fallback"))
        ? '`import("./fallback.js")` — in-process verification, only when the agent is unreachable'
        : `\`import()\` of ${path.basename(d.path)}`;
    rows.push(`| ${what} | ${(bytes(closure) / 1024).toFixed(0)} KB | ${topGroups(meta, closure, 4)} |`);
  }
  return [
    "What each verifier process loads (esbuild metafile of the same build as scripts/build.mjs; a chunk shared by several imports is counted where it is first needed):",
    "",
    "| Loaded when | Bytes | Largest inputs |",
    "|---|---|---|",
    ...rows,
  ];
}

export async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const f = await ctx.fixture();
  const dir = ctx.dir("pull-verifier");
  const verifier = ctx.verifier;
  if (!existsSync(verifier)) throw new Error(`${verifier} missing (node scripts/build.mjs)`);
  const agent = await startBenchAgent({
    entry: ctx.agentEntry,
    dir: path.join(dir, "agent"),
    policies: [policyDoc(f, "default", "notation")],
    defaultPolicy: "default",
    logLevel: "warn",
  });
  try {
    const img = f.images.jws;
    const warm = await agent.pullVerdict({ name: img.ref, digest: img.digest });
    if (!warm.allowed) throw new Error(`warm-up verdict denied: ${warm.message}`);
    const res = await fetch(`${f.registry.url}/v2/bench/jws/manifests/${img.digest}`, {
      headers: {
        accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
      },
    });
    const body = Buffer.from(await res.arrayBuffer());
    const descriptor = JSON.stringify({
      mediaType: res.headers.get("content-type") ?? "application/vnd.oci.image.manifest.v1+json",
      digest: img.digest,
      size: body.length,
    });
    const args = [
      "-name",
      img.ref,
      "-digest",
      img.digest,
      "-stdin-media-type",
      "application/vnd.oci.descriptor.v1+json",
    ];
    const baseEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir };
    // As installed (e2e/agent.test.ts): containerd passes TOLLGATE_CONFIG; the verifier reads the socket path from it.
    const envConfig = { ...baseEnv, TOLLGATE_CONFIG: agent.configPath };
    const envSocket = { ...baseEnv, TOLLGATE_AGENT_SOCKET: agent.socket };
    const { split, singleEntry } = await analyse(path.join(dir, "builds"));

    const variants: Array<{
      key: string;
      cmd: string[];
      env: NodeJS.ProcessEnv;
      input?: string;
      verifier: boolean;
    }> = [
      { key: "node", cmd: ["-e", "0"], env: baseEnv, verifier: false },
      { key: "verifier", cmd: [verifier, ...args], env: envConfig, input: `${descriptor}\n`, verifier: true },
      {
        key: "verifierSocketEnv",
        cmd: [verifier, ...args],
        env: envSocket,
        input: `${descriptor}\n`,
        verifier: true,
      },
      {
        key: "single",
        cmd: [singleEntry, ...args],
        env: envConfig,
        input: `${descriptor}\n`,
        verifier: true,
      },
    ];
    const n = iterations(ctx, 60, 8);
    const warmup = 3;
    const samples = new Map<string, number[]>(variants.map((v) => [v.key, []]));
    // A variant that cannot answer is a finding, not a crash: it is dropped and reported.
    const broken = new Map<string, string>();
    ctx.log(`pull-verifier: ${n} interleaved rounds of ${variants.map((v) => v.key).join(", ")}`);
    for (let i = 0; i < n + warmup; i++) {
      for (const v of variants) {
        if (broken.has(v.key)) continue;
        const r = await timeProcess(process.execPath, v.cmd, { env: v.env, input: v.input });
        if (r.code !== 0 || (v.verifier && !r.stderr.includes('"agent answered"'))) {
          if (v.key === "node") throw new Error(`node -e 0 exited ${r.code}`);
          broken.set(v.key, `exit ${r.code}: ${r.stdout.trim().slice(0, 600)}`);
          ctx.log(`pull-verifier: ${v.key} failed: ${r.stdout.trim().slice(0, 300)}`);
          continue;
        }
        if (i >= warmup) samples.get(v.key)!.push(r.ms);
      }
    }
    const s = Object.fromEntries(
      [...samples].filter(([k]) => !broken.has(k)).map(([k, v]) => [k, summarize(v)]),
    ) as Record<string, Summary>;
    // The row is about the shipped binary as installed; if that cannot answer, the row says
    // so and shows the shipped binary with the socket in the environment instead.
    const mainKey = broken.has("verifier") ? "verifierSocketEnv" : "verifier";
    if (!s[mainKey])
      throw new Error(
        `the shipped verifier answered in no configuration: ${[...broken.values()].join("; ")}`,
      );
    const ratio = s[mainKey]!.p50 / s.node!.p50;
    const rel = (k: string) => (s[k] ? `${fmtRatio(s[k]!.p50 / s.node!.p50)}` : "could not answer");
    const shippedKB = (readFileSync(verifier).length / 1024).toFixed(1);
    const singleKB = (readFileSync(singleEntry).length / 1024).toFixed(0);
    return {
      id: "pull-verifier",
      title: "Pull verifier start-up",
      rows: [
        {
          what: "Pull verifier (one process per pull, answered from the agent's cache)",
          how: `wall time spawn→exit of \`node dist/tollgate-verify.mjs\` (bindir args, descriptor on stdin, ${mainKey === "verifier" ? "TOLLGATE_CONFIG as installed" : "TOLLGATE_AGENT_SOCKET set, because with TOLLGATE_CONFIG (as installed) it could not answer, see below"}) vs \`node -e 0\`, ${n} interleaved runs`,
          baseline: `node -e 0: ${fmtSummary(s.node!)}`,
          result:
            mainKey === "verifier"
              ? fmtSummary(s[mainKey]!)
              : `as installed (TOLLGATE_CONFIG): cannot answer (${(broken.get("verifier") ?? "").match(/configuration: [^(]*/)?.[0]?.trim() ?? "see below"}); with TOLLGATE_AGENT_SOCKET: ${fmtSummary(s[mainKey]!)}`,
          ratio: `${fmtRatio(ratio)} (p50)`,
          target: `≤ ${TARGET_RATIO}× node start-up`,
          met: mainKey === "verifier" && ratio <= TARGET_RATIO,
        },
      ],
      details: [
        "Each round runs every variant once, in order, so load changes hit all of them. Every verifier run must exit 0 and log `agent answered` (the verdict came from the agent's cache, warmed once before timing).",
        [
          "| Variant | p50 | p90 | p99 | ratio to node (p50) |",
          "|---|---|---|---|---|",
          ...[
            ["`node -e 0`", "node"],
            [
              `shipped \`dist/tollgate-verify.mjs\` (entry ${shippedKB} KB), TOLLGATE_CONFIG (as installed)`,
              "verifier",
            ],
            ["shipped, TOLLGATE_AGENT_SOCKET set (no config file read)", "verifierSocketEnv"],
            [
              `reference: the same source as one ${singleKB} KB file (no code splitting), TOLLGATE_CONFIG`,
              "single",
            ],
          ].map(([label, k]) =>
            broken.has(k!)
              ? `| ${label} | could not answer: ${broken.get(k!)!.replace(/\|/g, "\\|").replace(/\n/g, " ")} | | | |`
              : `| ${label} | ${fmtMs(s[k!]!.p50)} | ${fmtMs(s[k!]!.p90)} | ${fmtMs(s[k!]!.p99)} | ${fmtRatio(s[k!]!.p50 / s.node!.p50)} |`,
          ),
        ].join("\n"),
        breakdown(split).join("\n"),
        `Reading the rows: the cost above Node's own start-up is what the process loads and runs before it can ask the agent, plus the local API round trip (about 1 ms, see "Cold vs cached"). Setting TOLLGATE_AGENT_SOCKET in containerd's environment skips the config loader and its YAML parser (${rel("verifierSocketEnv")} vs ${rel("verifier")} with TOLLGATE_CONFIG); the one-file reference shows what code splitting saves (${rel("single")}).`,
        ...(broken.size > 0
          ? [
              `Broken in this run: ${[...broken.entries()].map(([k, e]) => `\`${k}\` (${e.replace(/\n/g, " ")})`).join("; ")}.`,
            ]
          : []),
      ],
    };
  } finally {
    await agent.stop();
  }
}
