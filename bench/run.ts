// `npm run bench`: runs every benchmark against baselines measured in the same run and
// writes docs/benchmarks.md. Needs root (containerd, runc) and the tools from
// scripts/install-deps.sh; builds dist/ itself. Not part of the test command.
//
//   npm run bench                      all benchmarks → docs/benchmarks.md
//   npm run bench -- --only nri,memory  a subset (report written to --out, default stdout only)
//   npm run bench -- --quick            few iterations: a smoke run of the harness, never published
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { assertToolsInstalled, repoRoot } from "../test/support/tools.js";
import type { BenchContext } from "./lib/context.js";
import { type Fixture, startFixture } from "./lib/fixtures.js";
import { bundle } from "./lib/proc.js";
import { type BenchOutcome, machineInfo, renderReport } from "./lib/report.js";

type Bench = {
  id: string;
  title: string;
  load: () => Promise<{ run(ctx: BenchContext): Promise<BenchOutcome> }>;
};

const BENCHES: Bench[] = [
  { id: "create-container", title: "CreateContainer overhead", load: () => import("./create-container.js") },
  { id: "nri", title: "NRI round trip", load: () => import("./nri-roundtrip.js") },
  { id: "pull-verifier", title: "Pull verifier start-up", load: () => import("./pull-verifier.js") },
  { id: "cold-vs-cached", title: "Cold vs cached", load: () => import("./cold-vs-cached.js") },
  { id: "dedup", title: "Deduplication", load: () => import("./dedup.js") },
  { id: "throughput", title: "Verification throughput", load: () => import("./throughput.js") },
  { id: "memory", title: "Agent memory", load: () => import("./memory.js") },
  { id: "fleet", title: "Fleet model", load: () => import("./fleet.js") },
];

function parseArgs(argv: string[]) {
  const o = { only: undefined as string[] | undefined, quick: false, out: undefined as string | undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--quick") o.quick = true;
    else if (a === "--only") o.only = (argv[++i] ?? "").split(",").filter(Boolean);
    else if (a.startsWith("--only=")) o.only = a.slice(7).split(",").filter(Boolean);
    else if (a === "--out") o.out = argv[++i];
    else if (a.startsWith("--out=")) o.out = a.slice(6);
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

/** Benchmarks that run the self-contained verifier (dist/tollgate-verify). */
const NEEDS_SEA = new Set(["pull-verifier", "cold-vs-cached"]);

function prepare(log: (m: string) => void, sea: boolean): void {
  if (process.getuid?.() !== 0) throw new Error("benchmarks need root (containerd, runc): run as root");
  try {
    assertToolsInstalled();
  } catch {
    log("tools missing: running scripts/install-deps.sh");
    execFileSync("bash", [path.join(repoRoot, "scripts", "install-deps.sh")], { stdio: "inherit" });
    assertToolsInstalled();
  }
  log("building dist/ (node scripts/build.mjs)");
  execFileSync(process.execPath, [path.join(repoRoot, "scripts", "build.mjs")], {
    cwd: repoRoot,
    stdio: "inherit",
  });
  if (sea) {
    log("packaging the self-contained verifier (node scripts/package-verifier.mjs)");
    execFileSync(process.execPath, [path.join(repoRoot, "scripts", "package-verifier.mjs")], {
      cwd: repoRoot,
      stdio: "inherit",
    });
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const log = (m: string) => process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(0)}s] ${m}\n`);
  const unknown = args.only?.filter((id) => !BENCHES.some((b) => b.id === id));
  if (unknown?.length)
    throw new Error(
      `unknown benchmark(s) ${unknown.join(", ")}; known: ${BENCHES.map((b) => b.id).join(", ")}`,
    );
  const selected = BENCHES.filter((b) => !args.only || args.only.includes(b.id));
  prepare(
    log,
    selected.some((b) => NEEDS_SEA.has(b.id)),
  );
  const machine = machineInfo();
  const tmp = mkdtempSync(path.join(os.tmpdir(), "tollgate-bench-run-"));
  // A private copy of the built verifier (entry + lazy chunks): others may rebuild dist/
  // in the shared tree while the benchmarks run.
  const distCopy = path.join(tmp, "dist");
  mkdirSync(distCopy, { recursive: true });
  cpSync(path.join(repoRoot, "dist", "tollgate-verify.mjs"), path.join(distCopy, "tollgate-verify.mjs"));
  const chunks = path.join(repoRoot, "dist", "verify-chunks");
  if (existsSync(chunks)) cpSync(chunks, path.join(distCopy, "verify-chunks"), { recursive: true });
  const seaBuilt = path.join(repoRoot, "dist", "tollgate-verify");
  if (selected.some((b) => NEEDS_SEA.has(b.id))) cpSync(seaBuilt, path.join(distCopy, "tollgate-verify"));
  let fixture: Promise<Fixture> | undefined;
  const children = new Map<string, Promise<string>>();
  const ctx: BenchContext = {
    fixture: () => {
      fixture ??= startFixture(log);
      return fixture;
    },
    dir: (name) => {
      const d = path.join(tmp, name);
      mkdirSync(d, { recursive: true });
      return d;
    },
    verifier: path.join(distCopy, "tollgate-verify.mjs"),
    sea: path.join(distCopy, "tollgate-verify"),
    agentEntry: await bundle("bench/children/agent.ts", path.join(tmp, "bin"), "agent"),
    child: (entry) => {
      let p = children.get(entry);
      if (!p) {
        p = bundle(entry, path.join(tmp, "bin"), path.basename(entry, ".ts"));
        children.set(entry, p);
      }
      return p;
    },
    log,
    quick: args.quick,
  };
  const outcomes: BenchOutcome[] = [];
  try {
    for (const b of selected) {
      log(`== ${b.title}`);
      try {
        const m = await b.load();
        const o = await m.run(ctx);
        outcomes.push(o);
        for (const r of o.rows)
          log(`   ${r.what}: ${r.result} | baseline ${r.baseline} | ${r.ratio} | met=${r.met}`);
      } catch (e) {
        const msg = (e as Error).message.split("\n")[0] ?? String(e);
        log(`   FAILED: ${(e as Error).stack ?? msg}`);
        outcomes.push({ id: b.id, title: b.title, rows: [], details: [], error: msg });
      }
    }
  } finally {
    if (fixture) await (await fixture.catch(() => undefined))?.stop();
    if (!process.env.TOLLGATE_KEEP_BENCH_DIRS) rmSync(tmp, { recursive: true, force: true });
  }
  machine.loadAfter = os.loadavg();
  const full = !args.only && !args.quick;
  const md = renderReport(
    machine,
    outcomes,
    `npm run bench${full ? "" : ` -- ${process.argv.slice(2).join(" ")}`}`,
  );
  const out = args.out ?? (full ? path.join(repoRoot, "docs", "benchmarks.md") : undefined);
  if (out) {
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, md);
    log(`wrote ${path.relative(repoRoot, out)} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  } else process.stdout.write(md);
  // Documents a benchmark generates (docs/scaling.md): into the repository on full runs,
  // else next to --out (or only named) so a partial run never overwrites them.
  for (const o of outcomes)
    for (const [rel, text] of Object.entries(o.files ?? {})) {
      const target = full
        ? path.join(repoRoot, rel)
        : args.out
          ? path.join(path.dirname(args.out), path.basename(rel))
          : undefined;
      if (!target) {
        log(`${rel} generated (not written: partial run without --out)`);
        continue;
      }
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, text);
      log(`wrote ${path.relative(repoRoot, target) || target}`);
    }
  return outcomes.some((o) => o.error) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(2);
  },
);
