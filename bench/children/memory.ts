// Agent memory in the shipped configuration: this process runs the real agent (startAgent)
// with the Kubernetes policy source (informers against the in-test API server the parent
// runs), NRI on (registered with the parent's real containerd), metrics and health listener
// on, audit log at info. The agent's own engine is built with the agent's cache settings and
// signature verifiers that return a real notation report without a registry, so its verdict
// cache can be filled with N verdicts spread over the policies (each a realistic size).
// Prints RSS at each stage after a full GC (run with --expose-gc).
import { readFileSync } from "node:fs";
import { pino } from "pino";
import { defaultConfig } from "../../src/config/agent.js";
import { startAgent } from "../../src/agent/main.js";
import { agentLimits } from "../../src/decision/wiring.js";
import { compilePolicy, createEngine } from "../../src/engine/index.js";
import { buildCredentialResolver } from "../../src/engine/registry/credentials/index.js";
import type { SignatureCheck } from "../../src/engine/types.js";

interface Input {
  kubeconfig: string;
  nriSocket: string;
  containerdAddress: string;
  apiSocket: string;
  policies: unknown[];
  defaultPolicy: string;
  verdicts: number;
  checks: SignatureCheck[];
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

async function waitFor(what: string, ok: () => boolean, ms: number) {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main() {
  if (!gc) throw new Error("run with --expose-gc");
  const start = snapshot();
  const cfg = defaultConfig();
  cfg.nri.socket = input.nriSocket;
  cfg.containerd.address = input.containerdAddress;
  cfg.api.socket = input.apiSocket;
  cfg.policy.source = "kubernetes";
  cfg.policy.kubeconfig = input.kubeconfig;
  cfg.policy.defaultPolicy = input.defaultPolicy;
  cfg.metrics.listen = "127.0.0.1:0";
  const credentials = buildCredentialResolver(cfg.registry.credentialProviders, cfg.registry.dockerConfigs);
  const limits = agentLimits(cfg);
  const base = createEngine({
    limits,
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
  // As createAgentEngine: the engine, its global limits and the credential providers (none here).
  const engine = Object.assign(base, { credentials, limits });
  // The shipped level (info): audit records are written, to a file like a container's stdout.
  const log = pino({ level: cfg.log.level }, pino.destination({ dest: "/dev/null", sync: false }));
  const agent = await startAgent(cfg, log, { engine });
  await waitFor(
    "agent synced and registered with NRI",
    () => {
      const st = agent.status();
      return st.policies.length >= input.policies.length && st.nri.state === "registered";
    },
    60_000,
  );
  const st = agent.status();
  const idle = snapshot();

  // The agent's policies as the engine sees them: compiled from the same documents, they
  // carry the same revisions, so every verdict below is one the agent's gate would hit.
  const compiled = await Promise.all(input.policies.map((d) => compilePolicy(d)));
  const revisions = new Map(st.policies.map((p) => [p.name, p.revision]));
  const sameRevision = compiled.filter((p) => revisions.get(p.name) === p.revision).length;
  for (let i = 0; i < input.verdicts; i++) {
    const p = compiled[i % compiled.length]!;
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
    compiled[1 % compiled.length]!,
  );
  const nriState = agent.status().nri.state;
  await agent.stop();
  process.stdout.write(
    `${JSON.stringify({
      start,
      idle,
      full,
      cache: { entries: stats.entries, bytes: stats.bytes, evicted: stats.evicted, stored: stats.stored },
      verdictJsonBytes: sample ? JSON.stringify(sample).length : 0,
      policiesLoaded: st.policies.length,
      sameRevision,
      nriState,
      policySource: (st.policySource as { source?: string }).source,
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
