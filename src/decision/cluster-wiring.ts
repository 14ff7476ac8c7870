// The agent's Kubernetes-native visibility (src/k8s/cluster.ts: ImagePolicy status by the
// Lease holder, pod Events for denials), built from the configuration for the kubernetes
// policy source — beside wiring.ts, which builds that source, so the agent itself never
// imports src/k8s. Loaded lazily like the source (@kubernetes/client-node is heavy).
import type { Logger } from "pino";
import { errorMessage } from "../base/errors.js";
import type { AgentConfig } from "../config/agent.js";
import type { ClusterSettings, ClusterVisibility, OutcomeSource } from "../k8s/cluster.js";
import type { PodDenial } from "../k8s/events.js";
import type { CompiledPolicy, PolicySource } from "../policy-source/types.js";
import type { Decision } from "./decision.js";

export type { ClusterVisibility };

// src/config may not import src/k8s, so the configuration's `cluster` section and k8s's
// ClusterSettings are declared apart; this stops compiling the moment they drift.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
true satisfies Same<AgentConfig["cluster"], ClusterSettings>;

/** The cluster visibility pieces for the kubernetes source, else undefined (never throws). */
export async function startCluster(
  cfg: AgentConfig,
  source: PolicySource<CompiledPolicy>,
  log: Logger,
): Promise<ClusterVisibility | undefined> {
  const c = cfg.cluster;
  if (cfg.policy.source !== "kubernetes" || (!c.statusWriter && !c.podEvents)) return undefined;
  // Only the kubernetes source knows the ImagePolicy objects' generations.
  const outcomes = source as Partial<OutcomeSource>;
  if (typeof outcomes.objectOutcomes !== "function") return undefined;
  const { startClusterVisibility } = await import("../k8s/cluster.js");
  try {
    return startClusterVisibility({
      settings: c,
      source: outcomes as OutcomeSource,
      logger: log.child({ component: "cluster" }),
      ...(cfg.policy.kubeconfig ? { kubeconfigPath: cfg.policy.kubeconfig } : {}),
    });
  } catch (e) {
    // Visibility only: the gate decides without it.
    log.error({ err: errorMessage(e) }, "ImagePolicy status and pod Events are off");
    return undefined;
  }
}

export function podDenial(d: Decision, c: NonNullable<Decision["container"]>): PodDenial {
  const p: PodDenial = {
    namespace: d.namespace ?? "",
    pod: c.pod,
    container: c.name,
    image: d.image,
    reason: d.reason,
    kind: d.kind,
  };
  if (c.podUid) p.podUid = c.podUid;
  if (d.digest) p.digest = d.digest;
  if (d.policy) p.policy = d.policy;
  return p;
}
