// Agent memory: this process starts the real agent (startAgent: file policy source with the
// policies, local API, metrics listener; NRI off), then fills a verdict cache with N
// verdicts spread over the policies through the real engine (createEngine with the agent's
// cache settings; discovery and the signature verifiers replaced by functions returning a
// real notation report, so each cached verdict has a realistic size). Prints RSS at each
// stage after a full GC (run with --expose-gc).
import { readFileSync } from "node:fs";
import { pino } from "pino";
import { defaultConfig } from "../../src/agent/config.js";
import { startAgent } from "../../src/agent/main.js";
import { compilePolicy, createEngine } from "../../src/engine/index.js";
import type { SignatureCheck } from "../../src/engine/types.js";

interface Input {
  policyDir: string;
  policies: unknown[];
  defaultPolicy: string;
  verdicts: number;
  checks: SignatureCheck[];
  apiSocket: string;
}

const input = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as Input;
const gc = (globalThis as { gc?: () => void }).gc;

function snapshot() {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
  };
}

async function main() {
  if (!gc) throw new Error("run with --expose-gc");
  const start = snapshot();
  const cfg = defaultConfig();
  cfg.nri.enabled = false;
  cfg.api.socket = input.apiSocket;
  cfg.policy.dir = input.policyDir;
  cfg.policy.defaultPolicy = input.defaultPolicy;
  cfg.metrics.listen = "127.0.0.1:0";
  cfg.log.level = "warn";
  const agent = await startAgent(cfg, pino({ level: "warn" }));
  const st = agent.status();
  if (st.policies.length < input.policies.length)
    throw new Error(`agent loaded ${st.policies.length} of ${input.policies.length} policies`);
  const idle = snapshot();

  const policies = await Promise.all(input.policies.map((d) => compilePolicy(d)));
  const engine = createEngine({
    cache: { maxEntries: cfg.verification.cacheMaxEntries },
    verificationTimeoutMs: cfg.verification.timeoutMs,
    verifiers: {
      discover: async (subject) => ({ subject, artifacts: [], fetchBlob: async () => new Uint8Array() }),
      notation: async (_s, _c, o) =>
        input.checks.map((c) => ({ ...c, verifier: o.verifierName, signingTime: new Date().toISOString() })),
      cosign: async (_s, _c, o) => [
        {
          verifier: o.verifierName,
          kind: "cosign",
          result: "failed",
          check: "signature",
          reason: "no cosign signature found",
        },
      ],
    },
  });
  for (let i = 0; i < input.verdicts; i++) {
    const p = policies[i % policies.length]!;
    const hex = i.toString(16).padStart(8, "0").repeat(8);
    const v = await engine.verify(
      {
        reference: `registry.example.com/team-${i % 50}/service-${i}:v1.${i % 13}.0`,
        digest: `sha256:${hex}`,
      },
      p,
    );
    if (!v.allowed) throw new Error(`verdict ${i} not allowed: ${v.reasons[0]}`);
  }
  const full = snapshot();
  const stats = engine.stats();
  const sample = engine.cached(
    { reference: "registry.example.com/team-1/service-1:v1.1.0", digest: `sha256:${"00000001".repeat(8)}` },
    policies[1 % policies.length]!,
  );
  await agent.stop();
  process.stdout.write(
    `${JSON.stringify({
      start,
      idle,
      full,
      cache: { entries: stats.entries, bytes: stats.bytes, evicted: stats.evicted, stored: stats.stored },
      verdictJsonBytes: sample ? JSON.stringify(sample).length : 0,
      policiesLoaded: st.policies.length,
    })}\n`,
  );
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
