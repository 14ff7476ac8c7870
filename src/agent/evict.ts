// evictOnSync on runtimes whose NRI drops eviction requests (containerd 2.1 bundles NRI
// v0.8.0, which ignores both UpdateContainers' and CreateContainer's `evict`). After a
// (re)connect the Synchronize audit finds containers created while the plugin was away;
// the enforced rejections among them are stopped through CRI StopContainer on containerd's
// own socket, with a grace period (SIGTERM, then SIGKILL), one audit record each. kubelet
// then restarts the container per the pod's restart policy, and that CreateContainer goes
// through the gate again (now denied, with the reason in `kubectl describe pod`).
//
// Never touched: exempt namespaces and the Kubernetes system namespaces, whatever the
// decision said; stopping a system component would be the outage this tool must not cause.
import { errorMessage } from "../base/errors.js";
import { credentials, Metadata } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { RuntimeServiceClient } from "../gen/cri.js";
import type { AgentMetrics } from "./metrics.js";

export const SYSTEM_NAMESPACES: readonly string[] = ["kube-system", "kube-public", "kube-node-lease"];

export interface Eviction {
  containerId: string;
  reason: string;
  namespace?: string;
  pod?: string;
  name?: string;
  image?: string;
  digest?: string;
}

/** Stops one container; the CRI implementation is below, tests may pass another. */
export type StopContainer = (containerId: string, gracePeriodSeconds: number) => Promise<void>;

export interface EvictorOptions {
  stop: StopContainer;
  gracePeriodSeconds: number;
  exemptNamespaces: readonly string[];
  log: Pick<Logger, "info" | "warn" | "error">;
  metrics?: AgentMetrics;
}

export class Evictor {
  private readonly never: Set<string>;
  constructor(private readonly o: EvictorOptions) {
    this.never = new Set([...SYSTEM_NAMESPACES, ...o.exemptNamespaces]);
  }

  /** Stops each container (sequentially: a grace period each is bounded by the runtime). */
  async evict(list: readonly Eviction[]): Promise<{ stopped: number; skipped: number; failed: number }> {
    let stopped = 0;
    let skipped = 0;
    let failed = 0;
    for (const e of list) {
      const rec = {
        audit: true,
        event: "evict",
        container: { id: e.containerId, name: e.name, pod: e.pod },
        namespace: e.namespace,
        image: e.image,
        digest: e.digest,
        gracePeriodSeconds: this.o.gracePeriodSeconds,
        reason: e.reason,
      };
      if (!e.namespace || this.never.has(e.namespace)) {
        skipped++;
        this.o.log.warn(
          { ...rec, result: "skipped" },
          `tollgate: not stopping container ${e.containerId}: namespace "${e.namespace ?? ""}" is exempt or a system namespace`,
        );
        continue;
      }
      try {
        await this.o.stop(e.containerId, this.o.gracePeriodSeconds);
        stopped++;
        this.o.metrics?.evictions.inc({ result: "stopped" });
        this.o.log.warn(
          { ...rec, result: "stopped" },
          `tollgate: stopped container ${e.name ?? e.containerId} in namespace "${e.namespace}" (created while the plugin was away): ${e.reason}`,
        );
      } catch (err) {
        failed++;
        this.o.metrics?.evictions.inc({ result: "failed" });
        this.o.log.error(
          { ...rec, result: "failed", err: errorMessage(err) },
          `tollgate: could not stop non-compliant container ${e.containerId}`,
        );
      }
    }
    return { stopped, skipped, failed };
  }
}

/** CRI RuntimeService.StopContainer on containerd's socket (the CRI plugin shares it). */
export function criStopContainer(address: string, callTimeoutMs = 10_000): StopContainer {
  const target = address.startsWith("unix://") ? address : `unix://${address}`;
  return (containerId, gracePeriodSeconds) =>
    new Promise<void>((resolve, reject) => {
      const client = new RuntimeServiceClient(target, credentials.createInsecure());
      const deadline = new Date(Date.now() + gracePeriodSeconds * 1000 + callTimeoutMs);
      client.stopContainer(
        { containerId, timeout: gracePeriodSeconds },
        new Metadata(),
        { deadline },
        (err) => {
          client.close();
          if (err) reject(new Error(`CRI StopContainer ${containerId}: ${err.details || err.message}`));
          else resolve();
        },
      );
    });
}
