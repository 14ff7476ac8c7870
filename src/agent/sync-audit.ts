// Synchronize audit: when the NRI plugin (re)connects, containerd sends every existing pod
// and container. Those containers were created without us (before the agent started, or
// while it was gone — NRI is fail-open), so their images are checked against their
// namespaces' policies now, in the background (Synchronize itself must be answered inside
// the request timeout). Non-compliant ones are logged and counted.
//
// Eviction (opt-in, enforce mode, rejected verdicts only): containerd 2.1.9 bundles NRI
// v0.8.0, which drops NRI eviction requests silently, so the agent stops those containers
// through CRI StopContainer instead (evict.ts: grace period, one audit record each, never
// exempt or system namespaces).
import { errorMessage } from "../base/errors.js";
import type { Logger } from "pino";
import type { SyncAuditSummary } from "../agent-api/types.js";
import type { Decision } from "../decision/decision.js";
import type { Eviction } from "./evict.js";
import { IMAGE_NAME_ANNOTATION } from "./gate.js";
import type { AgentMetrics } from "./metrics.js";

/** The parts of NRI's PodSandbox / Container the audit reads. */
export interface SyncPod {
  id: string;
  name: string;
  namespace: string;
}
export interface SyncContainer {
  id: string;
  podSandboxId: string;
  name: string;
  state?: number;
  annotations?: Record<string, string>;
}

/** NRI ContainerState.CONTAINER_STOPPED */
const STOPPED = 4;

export interface SyncAuditOptions {
  evaluate(input: {
    event: "sync";
    namespace: string;
    imageName: string;
    container: { id: string; name: string; pod: string };
  }): Promise<Decision>;
  evictOnSync: boolean;
  /** Only containers created while the plugin was away are evicted (seen-containers.ts). */
  createdInGap?: (containerId: string) => boolean;
  evict?(evictions: Eviction[]): Promise<void>;
  metrics?: AgentMetrics;
  log: Pick<Logger, "info" | "warn" | "error">;
  concurrency?: number;
}

/** Non-compliant = the policy would deny (even if audit mode or break-glass let it run). */
export function isNonCompliant(d: Decision): boolean {
  return !d.allowed || d.kind === "audit" || d.kind === "break-glass" || (d.kind === "failed" && d.allowed);
}

export async function runSyncAudit(
  pods: SyncPod[],
  containers: SyncContainer[],
  o: SyncAuditOptions,
): Promise<SyncAuditSummary> {
  const podById = new Map(pods.map((p) => [p.id, p]));
  const todo = containers.filter((c) => c.state !== STOPPED);
  const results: Array<{ c: SyncContainer; pod: SyncPod | undefined; d: Decision }> = [];
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const c = todo[next++]!;
      const pod = podById.get(c.podSandboxId);
      const d = await o.evaluate({
        event: "sync",
        namespace: pod?.namespace ?? "",
        imageName: c.annotations?.[IMAGE_NAME_ANNOTATION] ?? "",
        container: { id: c.id, name: c.name, pod: pod?.name ?? "" },
      });
      results.push({ c, pod, d });
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 4, todo.length) }, worker));

  const bad = results.filter((r) => isNonCompliant(r.d));
  for (const r of bad) {
    o.log.warn(
      {
        syncAudit: true,
        container: { id: r.c.id, name: r.c.name },
        pod: r.pod?.name,
        namespace: r.d.namespace,
        image: r.d.image,
        digest: r.d.digest,
        policy: r.d.policy,
        kind: r.d.kind,
      },
      `non-compliant running container: ${r.d.message}`,
    );
  }
  o.metrics?.nonCompliant.set(bad.length);
  o.metrics?.syncAudits.inc();

  let evictionsRequested = 0;
  if (o.evictOnSync && o.evict) {
    // Only enforced rejections: never evict for a transient failure, an audit-mode or a
    // break-glass namespace.
    const ev = bad
      .filter((r) => !r.d.allowed && r.d.kind === "rejected" && r.d.mode === "Enforce")
      .filter((r) => o.createdInGap?.(r.c.id) ?? true)
      .map(
        (r): Eviction => ({
          containerId: r.c.id,
          reason: r.d.message,
          namespace: r.d.namespace,
          pod: r.pod?.name,
          name: r.c.name,
          image: r.d.image,
          digest: r.d.digest,
        }),
      );
    if (ev.length > 0) {
      try {
        await o.evict(ev);
        evictionsRequested = ev.length;
        o.log.warn(
          { evictions: ev.length },
          "evicted non-compliant containers created while the plugin was away",
        );
      } catch (e) {
        o.log.error({ err: errorMessage(e) }, "eviction request failed");
      }
    }
  }
  const summary: SyncAuditSummary = {
    at: new Date().toISOString(),
    containers: todo.length,
    nonCompliant: bad.map((r) => ({
      id: r.c.id,
      name: r.c.name,
      pod: r.pod?.name ?? "",
      namespace: r.d.namespace ?? "",
      image: r.d.image,
      reason: r.d.message,
    })),
    evictionsRequested,
  };
  o.log.info(
    { syncAudit: true, containers: summary.containers, nonCompliant: bad.length, evictionsRequested },
    "synchronize audit finished",
  );
  return summary;
}
