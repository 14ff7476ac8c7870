// In-process verification when the agent is unreachable: the same policy source, engine
// and pull decision the agent uses, built from the on-disk agent configuration. Loaded
// with a dynamic import only on this path.
import type { PullVerdictRequest } from "../agent-api/types.js";
import type { AgentConfig } from "../config/agent.js";
import type { Decision } from "../decision/decision.js";
import { ExemptImages } from "../decision/exempt.js";
import { PullDecider } from "../decision/pull.js";
import { pullScopeFor } from "../decision/pull-scope.js";
import { createAgentEngine, createPolicySource, normalizeName, startSynced } from "../decision/wiring.js";

type Diag = (msg: string, extra?: Record<string, unknown>) => void;

export async function verifyInProcess(
  cfg: AgentConfig,
  req: PullVerdictRequest,
  opts: { deadline: number; log: Diag },
): Promise<Decision> {
  const logger = {
    info: (o: object, m?: string) => opts.log(m ?? "policy source", o as Record<string, unknown>),
    warn: (o: object, m?: string) => opts.log(m ?? "policy source", o as Record<string, unknown>),
    error: (o: object, m?: string) => opts.log(m ?? "policy source", o as Record<string, unknown>),
  };
  // kubernetes source: the host has no API server credentials; decide from the snapshot.
  const source = await createPolicySource(cfg, logger, { snapshotOnly: cfg.policy.source === "kubernetes" });
  await withTimeout(
    startSynced(source, opts.deadline - Date.now()),
    opts.deadline - Date.now(),
    "loading policies",
  );
  try {
    // A snapshot past its maximum age loads but decides nothing: say so, and let the
    // caller apply the failure policy with that reason.
    const st = source.status();
    if (!st.ready) throw new Error(st.sync.lastError ?? `policy source ${st.source} is not ready`);
    // Keyless roots from the agent's TUF cache only: no mirror is contacted from here.
    const engine = createAgentEngine(cfg, undefined, { offline: true });
    const decider = new PullDecider({
      selector: source,
      engine,
      exemptImages: new ExemptImages(cfg.policy.exemptImages),
      mode: cfg.pullVerifier.mode,
      timeoutMs: Math.max(50, opts.deadline - Date.now() - 100),
      failurePolicy: cfg.pullVerifier.failurePolicy,
      normalize: normalizeName,
      scope: pullScopeFor(cfg.policy, source),
      sink: {
        record: (d) =>
          opts.log("decision (in-process)", {
            result: d.allowed ? "allow" : "deny",
            kind: d.kind,
            image: d.image,
            digest: d.digest,
            policy: d.policy,
            reason: d.reason,
          }),
      },
    });
    return await decider.decide(req);
  } finally {
    await source.stop().catch(() => {});
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} took longer than ${Math.max(0, ms)} ms`)),
        Math.max(0, ms),
      );
    }),
  ]).finally(() => clearTimeout(timer));
}
