// Verification throughput with warm trust material, one core: see bench/children/throughput.ts.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { type BenchContext, iterations } from "./lib/context.js";
import { policyDoc } from "./lib/fixtures.js";
import { pinned, runJsonChild } from "./lib/proc.js";
import type { BenchOutcome, Row } from "./lib/report.js";
import { fmtMs, fmtRate, fmtRatio, type Summary } from "./lib/stats.js";

interface Loop {
  n: number;
  ms: number;
  cpuMs: number;
  perSecond: number;
  perCpuSecond: number;
  latency: Summary;
}

export async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const f = await ctx.fixture();
  const dir = ctx.dir("throughput");
  const seconds = iterations(ctx, 8, 2);
  const notation = policyDoc(f, "jws-cose", "notation");
  const cosign = policyDoc(f, "cosign", "cosign");
  const inputPath = path.join(dir, "input.json");
  writeFileSync(
    inputPath,
    JSON.stringify({
      seconds,
      cases: [
        {
          label: "Notary JWS",
          reference: f.images.jws.ref,
          digest: f.images.jws.digest,
          policy: notation,
          kinds: ["notation"],
        },
        {
          label: "Notary COSE",
          reference: f.images.cose.ref,
          digest: f.images.cose.digest,
          policy: notation,
          kinds: ["notation"],
        },
        {
          label: "cosign bundle (key)",
          reference: f.images.cosign.ref,
          digest: f.images.cosign.digest,
          policy: cosign,
          kinds: ["cosign-bundle", "cosign-artifact-sig", "cosign-simplesigning"],
        },
      ],
    }),
  );
  const child = await ctx.child("bench/children/throughput.ts");
  const p = pinned(0, process.execPath, [child, inputPath]);
  ctx.log(`throughput: ${seconds} s per case, pinned: ${p.cmd !== process.execPath}`);
  const r = await runJsonChild<{
    results: Array<Loop & { label: string; verifications: number; hits: number }>;
    raw: Record<"rsa-pss" | "ecdsa", Loop>;
    registryRequests: number;
  }>(p.cmd, p.args);
  const rows: Row[] = r.results.map((x) => {
    const raw = x.label.startsWith("cosign") ? r.raw.ecdsa : r.raw["rsa-pss"];
    const rawLabel = x.label.startsWith("cosign") ? "ECDSA P-256" : "RSA-2048 PSS";
    return {
      what: `Verification throughput, ${x.label}`,
      how: `engine.verify with the verdict cache cleared each time, signature artifacts in memory, trust material compiled once; ${seconds} s on one core (taskset), ${x.n} verifications`,
      baseline: `raw node:crypto ${rawLabel} verify: ${fmtRate(raw.perCpuSecond)} per CPU-s`,
      result: `${fmtRate(x.perCpuSecond)} per CPU-s (wall ${fmtRate(x.perSecond)}); p50 ${fmtMs(x.latency.p50)}, p99 ${fmtMs(x.latency.p99)}`,
      ratio: `${fmtRatio(raw.perCpuSecond / x.perCpuSecond)} the cost of one raw verify`,
      target: "report (no numeric target)",
      met: undefined,
    };
  });
  return {
    id: "throughput",
    title: "Verification throughput",
    rows,
    details: [
      "Each verification is the engine's full decision on real signatures made by the notation 1.3.2 and cosign 3.1.1 CLIs: envelope parsing (JWS / COSE_Sign1 / sigstore bundle), X.509 chain to the policy's trust store and trusted-identity match (Notary Project), signature verification, payload checks against the subject digest, AnyOf/AllOf and the verdict report. Discovery ran once against the loopback registry; its result (manifests and blobs) is served from memory, so no network I/O is in the loop (the registry saw " +
        `${r.registryRequests} requests in total).`,
      "The per-CPU-second rate is what one core sustains (process CPU time, all threads, process pinned to core 0); wall rates are lower when other work shares the core.",
      [
        "| Case | verifications | per CPU-s | wall /s | p50 | p90 | p99 |",
        "|---|---|---|---|---|---|---|",
        ...r.results.map(
          (x) =>
            `| ${x.label} | ${x.n} | ${fmtRate(x.perCpuSecond)} | ${fmtRate(x.perSecond)} | ${fmtMs(x.latency.p50)} | ${fmtMs(x.latency.p90)} | ${fmtMs(x.latency.p99)} |`,
        ),
        `| raw RSA-2048 PSS verify (baseline) | ${r.raw["rsa-pss"].n} | ${fmtRate(r.raw["rsa-pss"].perCpuSecond)} | ${fmtRate(r.raw["rsa-pss"].perSecond)} | ${fmtMs(r.raw["rsa-pss"].latency.p50)} | | |`,
        `| raw ECDSA P-256 verify (baseline) | ${r.raw.ecdsa.n} | ${fmtRate(r.raw.ecdsa.perCpuSecond)} | ${fmtRate(r.raw.ecdsa.perSecond)} | ${fmtMs(r.raw.ecdsa.latency.p50)} | | |`,
      ].join("\n"),
    ],
  };
}
