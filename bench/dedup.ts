// Deduplication, counted at the registry: a counting HTTP proxy sits in front of the real
// docker-registry, and every image is referenced through it, so every request any
// verification makes is seen. Baselines are single verifications of the same image on a
// fresh engine (cold content cache), measured in the same run.
import path from "node:path";
import { createEngine } from "../src/engine/index.js";
import { startCountingProxy } from "../test/agent/counting-proxy.js";
import { startBenchAgent } from "./lib/agent.js";
import type { BenchContext } from "./lib/context.js";
import { policyDoc } from "./lib/fixtures.js";
import type { BenchOutcome } from "./lib/report.js";

export const CONCURRENT = 50;
export const RETRIES = 100;

export async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const f = await ctx.fixture();
  const proxy = await startCountingProxy(f.registry.host);
  const dir = ctx.dir("dedup");
  try {
    const { compilePolicy } = await import("../src/engine/index.js");
    const policy = await compilePolicy(policyDoc(f, "default", "notation"));
    const signed = { reference: `${proxy.host}/bench/jws:v1`, digest: f.images.jws.digest };
    const unsigned = { reference: `${proxy.host}/bench/unsigned:v1`, digest: f.images.unsigned.digest };
    const delta = async (fn: () => Promise<unknown>) => {
      const before = proxy.count();
      await fn();
      return proxy.count() - before;
    };

    // Baselines: one verification each, fresh engines.
    const singleSigned = await delta(() => createEngine().verify(signed, policy));
    const singleDenied = await delta(async () => {
      const v = await createEngine().verify(unsigned, policy);
      if (v.allowed) throw new Error("unsigned image was allowed");
    });

    // 50 concurrent verifications of one digest on one fresh engine.
    const e1 = createEngine();
    const concurrentReq = await delta(async () => {
      const vs = await Promise.all(Array.from({ length: CONCURRENT }, () => e1.verify(signed, policy)));
      if (!vs.every((v) => v.allowed)) throw new Error("a concurrent verification was denied");
    });
    const s1 = e1.stats();

    // 100 retries of a denied image inside the negative TTL (policy: 600 s), like kubelet back-off.
    const e2 = createEngine();
    const retryReq = await delta(async () => {
      for (let i = 0; i < RETRIES; i++) {
        const v = await e2.verify(unsigned, policy);
        if (v.allowed) throw new Error("unsigned image was allowed");
      }
    });
    const s2 = e2.stats();

    // The same through the real agent: 50 concurrent pull-verdict requests (what 50 verifier
    // processes for one pull would send), then 100 denied retries, on a fresh agent process.
    const agent = await startBenchAgent({
      entry: ctx.agentEntry,
      dir: path.join(dir, "agent"),
      policies: [policyDoc(f, "default", "notation")],
      defaultPolicy: "default",
      logLevel: "warn",
    });
    let agentConcurrentReq: number;
    let agentRetryReq: number;
    try {
      const req = { name: signed.reference, digest: signed.digest };
      agentConcurrentReq = await delta(async () => {
        const rs = await Promise.all(Array.from({ length: CONCURRENT }, () => agent.pullVerdict(req)));
        if (!rs.every((r) => r.allowed))
          throw new Error(`agent denied: ${rs.find((r) => !r.allowed)?.message}`);
      });
      const deny = { name: unsigned.reference, digest: unsigned.digest };
      agentRetryReq = await delta(async () => {
        for (let i = 0; i < RETRIES; i++) {
          const r = await agent.pullVerdict(deny);
          if (r.allowed) throw new Error("agent allowed the unsigned image");
        }
      });
    } finally {
      await agent.stop();
    }
    const verif = (n: number) => (Number.isInteger(n) ? n : n.toFixed(2));
    return {
      id: "dedup",
      title: "Deduplication",
      rows: [
        {
          what: `${CONCURRENT} concurrent verifications of one digest (engine)`,
          how: `Promise.all of ${CONCURRENT} engine.verify on one fresh engine; registry requests counted by a proxy in front of docker-registry`,
          baseline: `1 verification on a fresh engine: ${singleSigned} registry requests`,
          result: `${s1.verifications} verification (${s1.joined} callers joined it), ${concurrentReq} registry requests`,
          ratio: `${verif(concurrentReq / singleSigned)}× the requests of one verification`,
          target: "1 verification",
          met: s1.verifications === 1 && concurrentReq <= singleSigned,
        },
        {
          what: `${RETRIES} retries of a denied image inside the negative TTL (engine)`,
          how: `${RETRIES} sequential engine.verify of an unsigned image (policy negativeTTLSeconds 600) on one fresh engine`,
          baseline: `1 denial on a fresh engine: ${singleDenied} registry requests`,
          result: `${s2.verifications} verification, ${retryReq} registry requests, ${s2.hits} cache hits`,
          ratio: `${verif(retryReq / singleDenied)}× the requests of one verification`,
          target: "≤ 1 verification",
          met: s2.verifications <= 1 && retryReq <= singleDenied,
        },
        {
          what: `${CONCURRENT} concurrent pulls of one digest through the agent's local API`,
          how: `${CONCURRENT} concurrent POST /v1/pull-verdict (the request each tollgate-verify process sends) to a fresh agent process`,
          baseline: `1 verification: ${singleSigned} registry requests`,
          result: `${agentConcurrentReq} registry requests`,
          ratio: `${verif(agentConcurrentReq / singleSigned)}× one verification`,
          target: "1 verification",
          met: agentConcurrentReq <= singleSigned,
        },
        {
          what: `${RETRIES} denied pull retries through the agent's local API`,
          how: `${RETRIES} sequential POST /v1/pull-verdict of the unsigned image to the same agent`,
          baseline: `1 denial: ${singleDenied} registry requests`,
          result: `${agentRetryReq} registry requests`,
          ratio: `${verif(agentRetryReq / singleDenied)}× one verification`,
          target: "≤ 1 verification",
          met: agentRetryReq <= singleDenied,
        },
      ],
      details: [
        "Single flight and negative caching are keyed by digest × policy revision (src/engine/cache.ts). The engine rows read the engine's own counters (`verifications`, `joined`, `hits`) and the proxy's request count; the agent rows can only see the proxy, so they compare request counts with one verification of the same image (same request pattern: referrers lookup, signature manifest, signature blob).",
        `Registry request totals through the proxy in this benchmark: ${proxy.count()}.`,
      ],
    };
  } finally {
    await proxy.stop();
  }
}
