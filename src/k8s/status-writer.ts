// ImagePolicy.status: what the agents made of each policy, where `kubectl get imagepolicy`
// shows it. Every agent compiles every policy the same way, so one of them (the holder of
// the status Lease, lease.ts) writes for the cluster; the others only keep their view ready
// to take over. Writes go to the status subresource as a JSON merge patch carrying the
// resourceVersion the status was computed from: a 409 means the object changed meanwhile,
// and the next round works from the newer object instead of overwriting it.
//
// Status written:
//   observedGeneration  metadata.generation of the spec the conditions describe
//   revision            the policy revision in force (printer column "Revision")
//   conditions          Ready    True  Accepted          the current spec is in force
//                                False UpdateRejected    refused; an earlier revision stays
//                                False Invalid           refused; no revision (namespaces fail closed)
//                       Invalid  False Valid | True ValidationFailed | TrustMaterialUnavailable

import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { isRecord } from "../base/record.js";
import type { SourceLogger } from "../policy-source/types.js";
import { apiErrorMessage, apiStatusCode } from "./api-errors.js";
import { GROUP, PLURAL, type PolicyObjectOutcome, VERSION } from "./source.js";

export interface Condition {
  type: "Ready" | "Invalid";
  status: "True" | "False";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration: number;
}

export interface ImagePolicyStatus {
  observedGeneration: number;
  revision?: string;
  conditions: Condition[];
}

/** Longest condition message written (the API allows 32768; kubectl columns want less). */
const MAX_MESSAGE = 1024;

/** The status an outcome calls for; unchanged conditions keep their lastTransitionTime. */
export function desiredStatus(o: PolicyObjectOutcome, now: Date): ImagePolicyStatus {
  const prev = currentConditions(o.status);
  const cond = (type: Condition["type"], status: Condition["status"], reason: string, message: string) => {
    const before = prev.find((c) => c.type === type);
    const c: Condition = {
      type,
      status,
      reason,
      message: oneLine(message),
      lastTransitionTime:
        before && before.status === status && typeof before.lastTransitionTime === "string"
          ? before.lastTransitionTime
          : now.toISOString().replace(/\.\d{3}Z$/, "Z"),
      observedGeneration: o.generation,
    };
    return c;
  };
  let ready: Condition;
  let invalid: Condition;
  if (!o.rejected && o.revision !== undefined) {
    ready = cond("Ready", "True", "Accepted", `revision ${o.revision} is in force`);
    invalid = cond("Invalid", "False", "Valid", "the policy validated and compiled");
  } else {
    const reason = o.rejected?.reason ?? "not compiled yet";
    const why = /does not exist|could not be read|has no key/.test(reason)
      ? "TrustMaterialUnavailable"
      : "ValidationFailed";
    invalid = cond("Invalid", "True", why, reason);
    ready =
      o.revision !== undefined
        ? cond(
            "Ready",
            "False",
            "UpdateRejected",
            `generation ${o.generation} was refused; revision ${o.revision} of an earlier generation stays in force`,
          )
        : cond("Ready", "False", "Invalid", "no valid revision: namespaces that use this policy fail closed");
  }
  const s: ImagePolicyStatus = { observedGeneration: o.generation, conditions: [ready, invalid] };
  if (o.revision !== undefined) s.revision = o.revision;
  return s;
}

/** kubectl prints messages in columns: one line, bounded. */
function oneLine(m: string): string {
  const s = m.replace(/\s*\n\s*/g, "; ").trim();
  return s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE - 1)}…` : s;
}

function currentConditions(status: unknown): Partial<Condition>[] {
  if (!isRecord(status) || !Array.isArray(status.conditions)) return [];
  return status.conditions.filter(isRecord) as Partial<Condition>[];
}

/** True when the stored status already says what `want` says. */
export function sameStatus(stored: unknown, want: ImagePolicyStatus): boolean {
  if (!isRecord(stored)) return false;
  if (stored.observedGeneration !== want.observedGeneration) return false;
  if ((stored.revision ?? undefined) !== want.revision) return false;
  const have = currentConditions(stored);
  if (have.length !== want.conditions.length) return false;
  return want.conditions.every((w) => {
    const h = have.find((c) => c.type === w.type);
    return (
      h !== undefined &&
      h.status === w.status &&
      h.reason === w.reason &&
      h.message === w.message &&
      h.lastTransitionTime === w.lastTransitionTime &&
      h.observedGeneration === w.observedGeneration
    );
  });
}

export interface StatusWriterOptions {
  kubeConfig: KubeConfig;
  /** The agent's view: undefined while it is not live-synced (then nothing is written). */
  outcomes: () => Promise<PolicyObjectOutcome[] | undefined>;
  /** Only the lease holder writes. */
  isLeader: () => boolean;
  logger: SourceLogger;
  /** Changes are written this long after they settle (default 200 ms). */
  debounceMs?: number;
  /** Full comparison this often, in case a status was changed by someone else (default 60 s). */
  resyncMs?: number;
}

export class PolicyStatusWriter {
  private readonly api: CustomObjectsApi;
  private timer: NodeJS.Timeout | undefined;
  private resync: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  /** After a 409/404 the next pass waits for the informer: 1 s, doubling to 30 s. */
  private retryDelayMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = true;
  /** Set by stop(): a pass in progress ends early. */
  private closed = false;
  /** Status writes made (successful or not), for metrics and tests. */
  writes = 0;

  constructor(private readonly o: StatusWriterOptions) {
    this.api = o.kubeConfig.makeApiClient(CustomObjectsApi);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.resync = setInterval(() => this.kick(), this.o.resyncMs ?? 60_000);
    this.resync.unref();
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.resync) clearInterval(this.resync);
    this.timer = undefined;
    await this.running;
  }

  /** Something changed (policies, leadership): compare and write after a short pause. */
  kick(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.running) {
        this.again = true;
        return;
      }
      this.running = this.reconcile()
        .then(() => {})
        .catch((e: unknown) => this.o.logger.warn({ err: apiErrorMessage(e) }, "status update failed"))
        .finally(() => {
          this.running = undefined;
          if (this.again) {
            this.again = false;
            this.kick();
          }
        });
    }, this.o.debounceMs ?? 200);
    this.timer.unref();
  }

  /** One pass: every policy whose stored status differs from this agent's view is patched. */
  async reconcile(): Promise<number> {
    if (!this.o.isLeader()) return 0;
    const outcomes = await this.o.outcomes();
    if (!outcomes) return 0;
    let written = 0;
    let retry = false;
    for (const o of outcomes) {
      if (this.closed || !this.o.isLeader()) break;
      const want = desiredStatus(o, new Date());
      if (sameStatus(o.status, want)) continue;
      this.writes++;
      try {
        await this.api.patchClusterCustomObjectStatus(
          {
            group: GROUP,
            version: VERSION,
            plural: PLURAL,
            name: o.name,
            body: {
              metadata: { resourceVersion: o.resourceVersion },
              // null removes a revision that is no longer in force (merge patch).
              status: { ...want, revision: want.revision ?? null },
            },
          },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        );
        written++;
        this.o.logger.info(
          {
            policy: o.name,
            generation: o.generation,
            revision: want.revision,
            ready: want.conditions[0]!.status,
            reason: want.conditions[0]!.reason,
          },
          "ImagePolicy status written",
        );
      } catch (e) {
        const code = apiStatusCode(e);
        // 409: the object changed since our informer saw it; 404: deleted. The informer
        // brings the newer state; look again shortly.
        if (code === 409 || code === 404) retry = true;
        else throw e;
      }
    }
    if (!retry) this.retryDelayMs = 0;
    else if (!this.retryTimer && !this.closed) {
      // Not at once: a stale informer would make every immediate retry conflict again.
      this.retryDelayMs = Math.min(30_000, Math.max(1000, this.retryDelayMs * 2));
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.kick();
      }, this.retryDelayMs);
      this.retryTimer.unref();
    }
    return written;
  }
}
