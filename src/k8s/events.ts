// Kubernetes Events on Pods for create-time denials, so `kubectl describe pod` and
// `kubectl get events` show which policy refused which image digest.
//
// kubelet retries a failed container create with back-off, and a crash-looping Deployment
// can produce many denials a minute; one API write per denial would flood the API server.
// Like client-go's event correlator, identical denials (same pod, container, image digest,
// policy and reason) are one Event whose `count` and `lastTimestamp` grow:
//  - the first occurrence is created at once (core/v1 Event, type Warning);
//  - later ones are counted in memory and written as one merge patch at most every
//    `patchIntervalMs` per Event, so a storm of N denials costs 1 create + a few patches,
//    and the final count says N;
//  - all writes share a token bucket (`burst`, `perSecond`): beyond it occurrences keep
//    being counted and are written when tokens return; nothing blocks the gate;
//  - a patch answered 404 (the API server expires Events, default after 1 h) creates the
//    Event again with the accumulated count;
//  - at most `maxTracked` Events are tracked; the least recently seen is forgotten.
// The recorder never throws into the gate and never delays an answer: writes are queued.

import {
  CoreV1Api,
  type CoreV1Event,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import type { SourceLogger } from "../policy-source/types.js";
import { apiErrorMessage, apiStatusCode } from "./api-errors.js";

/** A create-time denial, as the agent reports it. */
export interface PodDenial {
  namespace: string;
  pod: string;
  /** The pod's UID (NRI PodSandbox.uid); kubectl describe pod matches Events on it. */
  podUid?: string;
  container: string;
  image: string;
  digest?: string;
  policy?: { name: string; revision: string };
  /** One line: why. */
  reason: string;
  /** "rejected" (requirements not met) or "failed" (verification incomplete, failure policy Closed). */
  kind: string;
}

export const EVENT_REASON_DENIED = "ImagePolicyDenied";
export const EVENT_REASON_FAILED = "ImageVerificationFailed";

export interface PodEventRecorderOptions {
  kubeConfig: KubeConfig;
  /** The node the agent runs on (Event source.host, reportingInstance). */
  node: string;
  logger: SourceLogger;
  /** Minimum time between writes to one Event (default 10 s). */
  patchIntervalMs?: number;
  /** Token bucket over all Event writes (default burst 25, 2 per second). */
  burst?: number;
  perSecond?: number;
  maxTracked?: number;
  now?: () => number;
}

interface Tracked {
  key: string;
  name: string;
  namespace: string;
  body: Record<string, unknown>;
  /** Occurrences so far (what the Event's count says once written). */
  count: number;
  written: number;
  firstAt: number;
  lastAt: number;
  lastWriteAt: number;
  created: boolean;
  inFlight: boolean;
  timer: NodeJS.Timeout | undefined;
}

const COMPONENT = "tollgate";

export class PodEventRecorder {
  private readonly api: CoreV1Api;
  private readonly tracked = new Map<string, Tracked>();
  private readonly interval: number;
  private readonly burst: number;
  private readonly perSecond: number;
  private readonly maxTracked: number;
  private readonly now: () => number;
  private tokens: number;
  private tokensAt: number;
  private stopped = false;
  /** API writes made (create + patch), and occurrences seen, for metrics and tests. */
  readonly stats = { creates: 0, patches: 0, failures: 0, occurrences: 0, throttled: 0 };

  constructor(private readonly o: PodEventRecorderOptions) {
    this.api = o.kubeConfig.makeApiClient(CoreV1Api);
    this.interval = o.patchIntervalMs ?? 10_000;
    this.burst = o.burst ?? 25;
    this.perSecond = o.perSecond ?? 2;
    this.maxTracked = o.maxTracked ?? 4096;
    this.now = o.now ?? Date.now;
    this.tokens = this.burst;
    this.tokensAt = this.now();
  }

  /** Records one denial; the API write happens in the background. */
  denied(d: PodDenial): void {
    if (this.stopped || !d.namespace || !d.pod) return;
    this.stats.occurrences++;
    const reason = d.kind === "failed" ? EVENT_REASON_FAILED : EVENT_REASON_DENIED;
    const key = JSON.stringify([
      d.namespace,
      d.pod,
      d.podUid ?? "",
      d.container,
      d.image,
      d.digest ?? "",
      d.policy?.name ?? "",
      d.policy?.revision ?? "",
      reason,
      d.reason,
    ]);
    const now = this.now();
    let t = this.tracked.get(key);
    if (t) {
      this.tracked.delete(key); // re-insert: most recently seen last
      this.tracked.set(key, t);
      t.count++;
      t.lastAt = now;
    } else {
      t = {
        key,
        name: `${d.pod}.${(BigInt(now) * 1_000_000n + BigInt(this.tracked.size)).toString(16)}`,
        namespace: d.namespace,
        body: eventBody(d, reason, this.o.node),
        count: 1,
        written: 0,
        firstAt: now,
        lastAt: now,
        lastWriteAt: 0,
        created: false,
        inFlight: false,
        timer: undefined,
      };
      this.tracked.set(key, t);
      this.evict();
    }
    this.schedule(t);
  }

  /** Writes what is pending (best effort, bounded by `timeoutMs`) and stops. */
  async stop(timeoutMs = 2000): Promise<void> {
    if (this.stopped) return;
    const pending = [...this.tracked.values()].filter((t) => t.count > t.written);
    for (const t of this.tracked.values()) if (t.timer) clearTimeout(t.timer);
    const flush = Promise.allSettled(pending.map((t) => this.write(t, true)));
    this.stopped = true;
    await Promise.race([flush, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  private evict(): void {
    while (this.tracked.size > this.maxTracked) {
      const oldest = this.tracked.values().next().value as Tracked;
      if (oldest.timer) clearTimeout(oldest.timer);
      this.tracked.delete(oldest.key);
    }
  }

  private schedule(t: Tracked): void {
    if (this.stopped || t.inFlight || t.timer || t.count <= t.written) return;
    const wait = t.created ? Math.max(0, t.lastWriteAt + this.interval - this.now()) : 0;
    const tokenWait = this.tokenWaitMs();
    const delay = Math.max(wait, tokenWait);
    if (delay === 0) {
      void this.write(t, false);
      return;
    }
    if (tokenWait > wait) this.stats.throttled++;
    t.timer = setTimeout(() => {
      t.timer = undefined;
      this.schedule(t);
    }, delay);
    t.timer.unref();
  }

  private tokenWaitMs(): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.tokensAt) / 1000) * this.perSecond);
    this.tokensAt = now;
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.perSecond) * 1000);
  }

  private async write(t: Tracked, final: boolean): Promise<void> {
    if (t.inFlight) return;
    if (!final) this.tokens -= 1;
    t.inFlight = true;
    const count = t.count;
    const last = new Date(t.lastAt).toISOString();
    try {
      if (t.created) {
        this.stats.patches++;
        try {
          await this.api.patchNamespacedEvent(
            {
              name: t.name,
              namespace: t.namespace,
              body: { count, lastTimestamp: last },
            },
            setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
          );
        } catch (e) {
          if (apiStatusCode(e) !== 404) throw e;
          // Expired by the API server: start the Event again, keeping the count.
          t.created = false;
          t.name = `${t.name.replace(/\.[0-9a-f]+$/, "")}.${(BigInt(this.now()) * 1_000_000n).toString(16)}`;
        }
      }
      if (!t.created) {
        this.stats.creates++;
        try {
          await this.api.createNamespacedEvent({
            namespace: t.namespace,
            body: {
              ...t.body,
              metadata: { ...(t.body.metadata as object), name: t.name, namespace: t.namespace },
              count,
              firstTimestamp: new Date(t.firstAt).toISOString(),
              lastTimestamp: last,
            } as unknown as CoreV1Event,
          });
        } catch (e) {
          if (apiStatusCode(e) !== 409) throw e;
          // Our name exists already (a restart reusing it, in theory): patch it instead.
          t.created = true;
          t.inFlight = false;
          await this.write(t, final);
          return;
        }
        t.created = true;
      }
      t.written = count;
    } catch (e) {
      this.stats.failures++;
      this.o.logger.warn(
        { event: `${t.namespace}/${t.name}`, err: apiErrorMessage(e) },
        "could not write the pod Event",
      );
      // Keep the occurrences: they are written with the next denial or after the interval.
    } finally {
      t.lastWriteAt = this.now();
      t.inFlight = false;
    }
    if (!final) this.schedule(t);
  }
}

function eventBody(d: PodDenial, reason: string, node: string): Record<string, unknown> {
  const image = d.digest && !d.image.includes("@") ? `${d.image} (${d.digest})` : d.image;
  const by = d.policy ? `ImagePolicy ${d.policy.name} (revision ${d.policy.revision})` : "Tollgate";
  const annotations: Record<string, string> = {};
  if (d.policy) annotations["tollgate.dev/policy"] = d.policy.name;
  if (d.policy) annotations["tollgate.dev/policy-revision"] = d.policy.revision;
  if (d.digest) annotations["tollgate.dev/digest"] = d.digest;
  const involved: Record<string, string> = {
    apiVersion: "v1",
    kind: "Pod",
    name: d.pod,
    namespace: d.namespace,
  };
  if (d.podUid) involved.uid = d.podUid;
  return {
    apiVersion: "v1",
    kind: "Event",
    metadata: { annotations },
    involvedObject: involved,
    type: "Warning",
    reason,
    message: truncate(`${by} denied image ${image} for container ${d.container}: ${d.reason}`, 1024),
    source: { component: COMPONENT, host: node },
    reportingComponent: `${COMPONENT}.dev/agent`,
    reportingInstance: node,
  };
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
