// Agent memory in the shipped configuration (Kubernetes policy source against the in-test
// API server, NRI registered with a real containerd, metrics on) with 50 policies and 10,000
// cached verdicts: see bench/children/memory.ts.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { startContainerd } from "../e2e/lib/containerd.js";
import { compilePolicy, createEngine } from "../src/engine/index.js";
import { FakeApiServer, type KObject, kubeConfigFor } from "../test/support/fake-apiserver.js";
import { shippedAgentNodeFlags } from "../test/support/shipped.js";
import type { BenchContext } from "./lib/context.js";
import { policyDoc, subjectOf } from "./lib/fixtures.js";
import { runJsonChild } from "./lib/proc.js";
import type { BenchOutcome } from "./lib/report.js";
import { fmtMB, fmtRatio } from "./lib/stats.js";

export const VERDICTS = 10_000;
export const POLICIES = 50;
export const TARGET_RSS_MB = 150;

interface Mem {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const f = await ctx.fixture();
  const dir = ctx.dir("memory");
  // A real notation report to copy into every cached verdict (realistic verdict size).
  const real = await createEngine().verify(
    subjectOf(f.images.jws),
    await compilePolicy(policyDoc(f, "probe", "notation")),
  );
  if (real.outcome !== "verified") throw new Error(`probe verification: ${real.reasons[0]}`);
  const policies = Array.from({ length: POLICIES }, (_, i) =>
    policyDoc(f, `team-${String(i).padStart(2, "0")}`, "both", {
      images: [`registry.example.com/team-${i}/**`, "**"],
    }),
  );
  const api = await FakeApiServer.start();
  const ctrd = await startContainerd({});
  try {
    for (const p of policies) api.apply("imagepolicies", p as unknown as KObject);
    // One namespace per policy, selected by annotation, as a multi-tenant cluster would have.
    for (let i = 0; i < POLICIES; i++)
      api.apply("namespaces", {
        metadata: {
          name: `team-${i}`,
          annotations: { "tollgate.dev/policy": `team-${String(i).padStart(2, "0")}` },
        },
      });
    const kubeconfig = path.join(dir, "kubeconfig");
    writeFileSync(kubeconfig, kubeConfigFor(api.url).exportConfig());
    const inputPath = path.join(dir, "input.json");
    writeFileSync(
      inputPath,
      JSON.stringify({
        kubeconfig,
        nriSocket: ctrd.nriSocket,
        containerdAddress: ctrd.address,
        apiSocket: path.join(dir, "run", "agent.sock"),
        policies,
        defaultPolicy: "team-00",
        verdicts: VERDICTS,
        checks: real.verifiers,
      }),
    );
    return await measure(ctx, inputPath);
  } finally {
    await ctrd.stop();
    await api.stop();
  }
}

async function measure(ctx: BenchContext, inputPath: string): Promise<BenchOutcome> {
  const child = await ctx.child("bench/children/memory.ts");
  // The agent's Node flags as the DaemonSet ships them (they size V8's young generation).
  const nodeFlags = shippedAgentNodeFlags();
  const bare = await runJsonChild<Mem>(process.execPath, [
    "--expose-gc",
    "-e",
    "gc();gc();const m=process.memoryUsage();console.log(JSON.stringify(m))",
  ]);
  ctx.log(`memory: agent + ${POLICIES} policies + ${VERDICTS} verdicts`);
  const r = await runJsonChild<{
    start: Mem;
    idle: Mem;
    full: Mem;
    cache: { entries: number; bytes: number; evicted: number; stored: number };
    verdictJsonBytes: number;
    policiesLoaded: number;
    sameRevision: number;
    nriState: string;
    policySource: string;
  }>(process.execPath, [...nodeFlags, "--expose-gc", child, inputPath]);
  const rssMB = r.full.rss / 2 ** 20;
  const allHeld = r.cache.entries >= VERDICTS && r.sameRevision === POLICIES;
  return {
    id: "memory",
    title: "Agent memory",
    rows: [
      {
        what: `Agent RSS, shipped configuration, ${VERDICTS.toLocaleString("en-US")} cached verdicts and ${POLICIES} policies`,
        how: `child process running the real agent (startAgent) as the DaemonSet configures it (node ${nodeFlags.join(" ") || "without flags"}): Kubernetes policy source (informers against the in-test API server, ${POLICIES} ImagePolicies each with a notation trust store + cosign key, ${POLICIES} annotated namespaces), NRI plugin registered with a real containerd 2.1, local API, metrics/health listener, audit log at info; its own engine's verdict cache (agent defaults) filled with ${VERDICTS.toLocaleString("en-US")} verdicts over the ${POLICIES} policies; RSS after full GC`,
        baseline: `bare node: ${fmtMB(bare.rss)}; agent idle with policies: ${fmtMB(r.idle.rss)}`,
        result: `${fmtMB(r.full.rss)} (cache holds ${r.cache.entries.toLocaleString("en-US")} verdicts, ${fmtMB(r.cache.bytes)} accounted)`,
        ratio: `${fmtRatio(r.full.rss / bare.rss)} bare node`,
        target: `≤ ${TARGET_RSS_MB} MB`,
        met: rssMB <= TARGET_RSS_MB && allHeld,
      },
    ],
    details: [
      [
        "| Stage | RSS | heap used | external |",
        "|---|---|---|---|",
        `| bare \`node -e\` | ${fmtMB(bare.rss)} | ${fmtMB(bare.heapUsed)} | ${fmtMB(bare.external)} |`,
        `| child started (modules loaded) | ${fmtMB(r.start.rss)} | ${fmtMB(r.start.heapUsed)} | ${fmtMB(r.start.external)} |`,
        `| agent running (${r.policySource} source synced, ${r.policiesLoaded} policies, NRI ${r.nriState}) | ${fmtMB(r.idle.rss)} | ${fmtMB(r.idle.heapUsed)} | ${fmtMB(r.idle.external)} |`,
        `| + ${VERDICTS.toLocaleString("en-US")} verdicts cached | ${fmtMB(r.full.rss)} | ${fmtMB(r.full.heapUsed)} | ${fmtMB(r.full.external)} |`,
      ].join("\n"),
      `Each cached verdict carries the real notation report of a verified image (about ${r.verdictJsonBytes.toLocaleString("en-US")} bytes as JSON). The cache stored ${r.cache.stored.toLocaleString("en-US")}, evicted ${r.cache.evicted.toLocaleString("en-US")} and holds ${r.cache.entries.toLocaleString("en-US")} (bounds: 10,000 entries, 32 MiB accounted at 2 bytes per JSON character).` +
        (allHeld ? "" : " The cache did not hold every verdict, so the target counts as missed."),
      `The verdicts are in the agent's own engine (startAgent's \`engine\` dependency: the agent's cache settings, signature verifiers that return the real report without a registry). They are keyed by policies compiled from the same documents, so they carry the agent's revisions (${r.sameRevision} of ${POLICIES} matched) and are verdicts its gate would answer from; those ${POLICIES} extra compiled policies slightly over-state the agent.`,
    ],
  };
}
