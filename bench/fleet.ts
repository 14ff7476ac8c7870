// Fleet model inputs. Tollgate verifies on every node, so an image rolled out to N nodes is
// verified N times. Measured here: the registry requests and CPU one node (one agent
// process) spends on an image it has never seen, and K agents (real agent processes, each
// with its own cache, as K nodes) asked for the same new image at once, against one origin
// registry behind the fault proxy (test/support/fault-proxy.ts, counting every request):
//   - without a mirror: every agent goes to the origin;
//   - with a pull-through mirror (a second docker-registry in proxy mode) named in each
//     agent's hosts.toml (`[host."http://mirror"] capabilities = ["pull", "resolve"]`), as
//     containerd itself would be configured;
//   - with the same mirror for content only (`capabilities = ["pull"]`): tags and the
//     referrers lookup go to the origin, manifests by digest and blobs through the mirror.
// Two rollout patterns: every node at once, and rolling (one node first, then the rest at
// once: a surge of one warms the caches). Each (mode, pattern, K) step uses a freshly pushed
// and signed image, so no cache (agents', mirror's) has seen it. The numbers feed
// docs/scaling.md, which this benchmark also writes.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { startFaultProxy } from "../test/support/fault-proxy.js";
import { pushBusyboxImage } from "../test/support/images.js";
import { startRegistry } from "../test/support/registry.js";
import { notationSign } from "../test/support/signing.js";
import { type BenchAgent, startBenchAgent } from "./lib/agent.js";
import type { BenchContext } from "./lib/context.js";
import { policyDoc } from "./lib/fixtures.js";
import { cpuMsOf } from "./lib/proc.js";
import type { BenchOutcome } from "./lib/report.js";
import { renderScaling } from "./scaling-doc.js";

export type FleetMode = "origin" | "mirror" | "mirror-pull";
export const MODES: readonly FleetMode[] = ["origin", "mirror", "mirror-pull"];
export const MODE_LABEL: Record<FleetMode, string> = {
  origin: "no mirror",
  mirror: "mirror (pull, resolve)",
  "mirror-pull": "mirror (pull)",
};
export type FleetPattern = "at-once" | "rolling";

export interface FleetStep {
  mode: FleetMode;
  pattern: FleetPattern;
  k: number;
  /** Requests that reached the origin registry. */
  origin: number;
  /** Rolling: the origin requests of the first node alone (the rest is origin − originFirst). */
  originFirst: number;
  /** Requests the agents sent to the mirror (mirror mode). */
  mirror: number;
  /** CPU (user + system) each agent spent on the new image, ms. */
  cpuMs: number[];
  wallMs: number;
  allowed: number;
  /** The origin's requests of this step, "METHOD path" with digests elided. */
  originPaths: string[];
}

function elide(p: string): string {
  return p.replace(/sha256([:-])[0-9a-f]{64}/g, "sha256$1…").replace(/\?.*$/, "");
}

/** "GET /v2/x (2), HEAD …" */
function grouped(paths: string[]): string {
  const m = new Map<string, number>();
  for (const p of paths) m.set(p, (m.get(p) ?? 0) + 1);
  return [...m].map(([p, n]) => `\`${p}\`${n > 1 ? ` ×${n}` : ""}`).join(", ");
}

export async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const f = await ctx.fixture();
  const dir = ctx.dir("fleet");
  const ks = ctx.quick ? [1, 2] : [1, 2, 4, 8];
  const maxK = ks[ks.length - 1]!;
  const origin = await startFaultProxy(f.registry.host);
  const mirrorRegistry = await startRegistry(path.join(dir, "mirror-registry"), {
    proxyRemoteUrl: `http://${origin.host}`,
  });
  const mirror = await startFaultProxy(mirrorRegistry.host);
  const agents: Record<FleetMode, BenchAgent[]> = { origin: [], mirror: [], "mirror-pull": [] };
  try {
    // hosts.toml for the origin's name: the mirror first, the origin as server (fallback).
    const certsDirs: Record<FleetMode, string> = {
      origin: path.join(dir, "certs.d-empty"),
      mirror: path.join(dir, "certs.d-mirror"),
      "mirror-pull": path.join(dir, "certs.d-mirror-pull"),
    };
    mkdirSync(certsDirs.origin, { recursive: true });
    for (const [mode, caps] of [
      ["mirror", '["pull", "resolve"]'],
      ["mirror-pull", '["pull"]'],
    ] as const) {
      mkdirSync(path.join(certsDirs[mode], origin.host), { recursive: true });
      writeFileSync(
        path.join(certsDirs[mode], origin.host, "hosts.toml"),
        `server = "http://${origin.host}"\n\n[host."http://${mirror.host}"]\n  capabilities = ${caps}\n`,
      );
    }
    ctx.log(`fleet: starting ${maxK} agents per mode (${MODES.join(", ")})`);
    for (const mode of MODES)
      for (let i = 0; i < maxK; i++)
        agents[mode].push(
          await startBenchAgent({
            entry: ctx.agentEntry,
            dir: path.join(dir, `${mode}-agent-${i}`),
            policies: [policyDoc(f, "default", "notation")],
            defaultPolicy: "default",
            certsDir: certsDirs[mode],
          }),
        );
    const steps: FleetStep[] = [];
    let n = 0;
    for (const k of ks)
      for (const pattern of ["at-once", "rolling"] as const)
        for (const mode of MODES) {
          const img = pushBusyboxImage(f.registry.host, `fleet/app-${++n}`, "v1", { marker: `fleet-${n}` });
          await notationSign({ ref: img.pinned, configDir: f.notation.configDir, format: "jws" });
          const name = `${origin.host}/fleet/app-${n}:v1`;
          const group = agents[mode].slice(0, k);
          const o0 = origin.requests.length;
          const m0 = mirror.requests.length;
          const cpu0 = group.map((a) => cpuMsOf(a.daemon.child.pid!));
          const t0 = performance.now();
          const ask = (g: BenchAgent[]) =>
            Promise.all(g.map((a) => a.pullVerdict({ name, digest: img.digest })));
          // At once: every node is asked for the image at the same time. Rolling: one node
          // first, then the others at once.
          const answers = pattern === "at-once" ? await ask(group) : await ask(group.slice(0, 1));
          const originFirst = origin.requests.length - o0;
          if (pattern === "rolling") answers.push(...(await ask(group.slice(1))));
          const wallMs = performance.now() - t0;
          const step: FleetStep = {
            mode,
            pattern,
            k,
            origin: origin.requests.length - o0,
            originFirst,
            mirror: mirror.requests.length - m0,
            cpuMs: group.map((a, i) => cpuMsOf(a.daemon.child.pid!) - cpu0[i]!),
            wallMs,
            allowed: answers.filter((a) => a.allowed).length,
            originPaths: origin.requests.slice(o0).map((r) => `${r.method} ${elide(r.path)}`),
          };
          if (step.allowed !== k)
            throw new Error(
              `fleet ${mode} ${pattern} K=${k}: ${k - step.allowed} agents denied ${name}: ${answers.find((a) => !a.allowed)?.message}`,
            );
          ctx.log(`fleet: ${mode} ${pattern} K=${k}: origin ${step.origin} requests, mirror ${step.mirror}`);
          steps.push(step);
        }
    return outcome(steps, ks);
  } finally {
    for (const a of MODES.flatMap((m) => agents[m])) await a.stop();
    await mirror.stop();
    await mirrorRegistry.stop();
    await origin.stop();
  }
}

/** Mean origin requests per node after the first, over the rolling steps with K > 1. */
export function marginal(steps: FleetStep[], mode: FleetMode): number | undefined {
  const rs = steps.filter((s) => s.mode === mode && s.pattern === "rolling" && s.k > 1);
  if (rs.length === 0) return undefined;
  return rs.reduce((p, s) => p + (s.origin - s.originFirst) / (s.k - 1), 0) / rs.length;
}

function outcome(steps: FleetStep[], ks: number[]): BenchOutcome {
  const at = (mode: FleetMode, k: number, pattern: FleetPattern = "at-once") =>
    steps.find((s) => s.mode === mode && s.k === k && s.pattern === pattern)!;
  const one = at("origin", 1);
  const kMax = ks[ks.length - 1]!;
  const cpuAll = steps.filter((s) => s.mode === "origin").flatMap((s) => s.cpuMs);
  const cpuPerNode = cpuAll.reduce((a, b) => a + b, 0) / cpuAll.length;
  const perNode = one.origin;
  const originLinear = ks.every((k) => at("origin", k).origin === k * perNode);
  const row = (mode: FleetMode) => ks.map((k) => `K=${k}: ${at(mode, k).origin}`).join(", ");
  const next = Object.fromEntries(MODES.map((m) => [m, marginal(steps, m)])) as Record<
    FleetMode,
    number | undefined
  >;
  const fmtNext = (m: FleetMode) => (next[m] === undefined ? "—" : next[m]!.toFixed(1));
  const pullHelps =
    next["mirror-pull"] !== undefined && next.origin !== undefined && next["mirror-pull"] < next.origin;
  return {
    id: "fleet",
    title: "Fleet model",
    rows: [
      {
        what: "Fleet: one node's cost for an image it has never seen",
        how: "one agent process asked for a new signed image (POST /v1/pull-verdict, as the pull verifier does); requests counted at the origin registry, CPU from /proc (10 ms ticks), averaged over every agent of the no-mirror runs",
        baseline: "—",
        result: `${perNode} registry requests, ${cpuPerNode.toFixed(0)} ms CPU per node per new image`,
        ratio: "—",
        target: "report (input of docs/scaling.md)",
        met: undefined,
      },
      {
        what: "Fleet: origin requests for one new image on K nodes at once, no mirror",
        how: `K real agent processes (one per simulated node, own caches) asked at once for the same new image, through the fault proxy in front of one docker-registry; K = ${ks.join(", ")}`,
        baseline: `K=1: ${perNode}`,
        result: row("origin"),
        ratio: originLinear ? `= K × ${perNode} (linear)` : "not exactly linear, see Fleet model",
        target: "report: grows with K",
        met: undefined,
      },
      {
        what: "Fleet: origin requests for one new image on K nodes at once, through a pull-through mirror",
        how: "same, each agent's hosts.toml names a docker-registry in proxy mode in front of the same origin, for pull and resolve / for pull only",
        baseline: `no mirror, K=${kMax}: ${at("origin", kMax).origin}`,
        result: `(pull, resolve): ${row("mirror")}; (pull): ${row("mirror-pull")}`,
        ratio: `at K=${kMax}: ${at("mirror", kMax).origin} / ${at("mirror-pull", kMax).origin} with the mirror vs ${at("origin", kMax).origin} without`,
        target: "report: a cold mirror asked by every node at once",
        met: undefined,
      },
      {
        what: "Fleet: origin requests per node after the first, rolling rollout (one node, then the rest)",
        how: `the same three configurations; one node asked first, then the other K−1 at once; (origin requests of the rest) ÷ (K−1), mean over K = ${ks.filter((k) => k > 1).join(", ")}`,
        baseline: `no mirror: ${fmtNext("origin")}`,
        result: `mirror (pull, resolve): ${fmtNext("mirror")}; mirror (pull): ${fmtNext("mirror-pull")}`,
        ratio: `mirror (pull): ${next.origin && next["mirror-pull"] !== undefined ? `${((next["mirror-pull"] / next.origin) * 100).toFixed(0)}%` : "—"} of no mirror`,
        target: "the recommended mirror (pull) takes requests off the origin: fewer per node than no mirror",
        met: pullHelps,
      },
    ],
    details: [
      [
        "| Mode | pattern | K | origin requests | of which the first node | requests to the mirror | CPU per agent (mean) | rollout wall time |",
        "|---|---|---|---|---|---|---|---|",
        ...steps.map(
          (s) =>
            `| ${MODE_LABEL[s.mode]} | ${s.pattern} | ${s.k} | ${s.origin} | ${s.pattern === "rolling" ? s.originFirst : "—"} | ${s.mode === "origin" ? "—" : s.mirror} | ${(s.cpuMs.reduce((a, b) => a + b, 0) / s.cpuMs.length).toFixed(0)} ms | ${s.wallMs.toFixed(0)} ms |`,
        ),
      ].join("\n"),
      `What one node's verification asks the origin (no mirror, K=1): ${grouped(one.originPaths)}. With the mirror for pull and resolve (K=1) the origin saw: ${grouped(at("mirror", 1).originPaths)}. With the mirror for pull only (K=1): ${grouped(at("mirror-pull", 1).originPaths)}. Rolling, K=${kMax}, mirror for pull only: after the first node, the other ${kMax - 1} together cost the origin ${grouped(at("mirror-pull", kMax, "rolling").originPaths.slice(at("mirror-pull", kMax, "rolling").originFirst))}. docs/scaling.md turns these numbers into the model for 10 / 1,000 / 10,000 nodes.`,
    ],
    files: { "docs/scaling.md": renderScaling({ steps, ks, perNode, cpuPerNode }) },
  };
}
