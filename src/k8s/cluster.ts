// Kubernetes-native visibility for the agent (kubernetes policy source only): the Lease
// election for the one ImagePolicy status writer, the writer itself, and pod Events for
// create-time denials. Built from the agent configuration's `cluster` section and the
// pod's downward-API environment (NODE_NAME, POD_NAME, POD_NAMESPACE).

import os from "node:os";
import { KubeConfig } from "@kubernetes/client-node";
import type { PolicyOutcome, SourceLogger } from "../policy-source/types.js";
import { type PodDenial, PodEventRecorder } from "./events.js";
import { LeaseElector } from "./lease.js";
import type { PolicyObjectOutcome } from "./source.js";
import { PolicyStatusWriter } from "./status-writer.js";

/** The agent configuration's `cluster` section. */
export interface ClusterSettings {
  /** Stand in the Lease election for the one agent that writes ImagePolicy.status. */
  statusWriter: boolean;
  /** A Warning Event on the pod for each create-time denial (aggregated). */
  podEvents: boolean;
  /** The Lease's namespace; "" = $POD_NAMESPACE, else tollgate-system. */
  leaseNamespace: string;
  leaseName: string;
  leaseDurationSeconds: number;
  /** This node's name (Events, Lease identity); "" = $NODE_NAME, else the host name. */
  nodeName: string;
}

/** What the cluster pieces need from the Kubernetes policy source. */
export interface OutcomeSource {
  objectOutcomes(): Promise<PolicyObjectOutcome[] | undefined>;
  policyOutcomes(): PolicyOutcome[];
  onChange(cb: () => void): () => void;
}

export interface ClusterVisibility {
  /** Reports a create-time denial (no-op when pod Events are off). */
  denied(d: PodDenial): void;
  isLeader(): boolean;
  elector: LeaseElector | undefined;
  writer: PolicyStatusWriter | undefined;
  events: PodEventRecorder | undefined;
  stop(): Promise<void>;
}

export interface ClusterVisibilityOptions {
  settings: ClusterSettings;
  source: OutcomeSource;
  logger: SourceLogger;
  /** Default: the in-cluster service account, else $KUBECONFIG / ~/.kube/config. */
  kubeconfigPath?: string;
  kubeConfig?: KubeConfig;
  env?: NodeJS.ProcessEnv;
  /** Election timing (tests shorten it). */
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  eventPatchIntervalMs?: number;
  statusDebounceMs?: number;
}

export function startClusterVisibility(o: ClusterVisibilityOptions): ClusterVisibility {
  const env = o.env ?? process.env;
  let kc = o.kubeConfig;
  if (!kc) {
    kc = new KubeConfig();
    if (o.kubeconfigPath) kc.loadFromFile(o.kubeconfigPath);
    else kc.loadFromDefault();
  }
  const node = o.settings.nodeName || env.NODE_NAME || os.hostname();
  const identity = env.POD_NAME ? `${env.POD_NAME}_${node}` : node;
  const namespace = o.settings.leaseNamespace || env.POD_NAMESPACE || "tollgate-system";
  const s = o.settings;

  let elector: LeaseElector | undefined;
  let writer: PolicyStatusWriter | undefined;
  let unsubscribe: (() => void) | undefined;
  if (s.statusWriter) {
    const leaseMs = s.leaseDurationSeconds * 1000;
    writer = new PolicyStatusWriter({
      kubeConfig: kc,
      outcomes: () => o.source.objectOutcomes(),
      isLeader: () => elector?.isLeader ?? false,
      logger: o.logger,
      ...(o.statusDebounceMs !== undefined ? { debounceMs: o.statusDebounceMs } : {}),
    });
    elector = new LeaseElector({
      kubeConfig: kc,
      namespace,
      name: s.leaseName,
      identity,
      leaseDurationMs: leaseMs,
      renewDeadlineMs: o.renewDeadlineMs ?? Math.round(leaseMs * (2 / 3)),
      retryPeriodMs: o.retryPeriodMs ?? Math.max(500, Math.round(leaseMs / 7.5)),
      logger: o.logger,
      onStartedLeading: () => writer?.kick(),
    });
    const w = writer;
    unsubscribe = o.source.onChange(() => w.kick());
    writer.start();
    elector.start();
  }
  const events = s.podEvents
    ? new PodEventRecorder({
        kubeConfig: kc,
        node,
        logger: o.logger,
        ...(o.eventPatchIntervalMs !== undefined ? { patchIntervalMs: o.eventPatchIntervalMs } : {}),
      })
    : undefined;

  return {
    denied: (d) => events?.denied(d),
    isLeader: () => elector?.isLeader ?? false,
    elector,
    writer,
    events,
    async stop() {
      unsubscribe?.();
      await writer?.stop();
      await elector?.stop();
      await events?.stop();
    },
  };
}
