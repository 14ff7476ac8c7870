// Leader election on a coordination.k8s.io/v1 Lease, with the rules client-go's
// leaderelection package follows, so a Tollgate agent and any other client agree on who
// holds it:
//  - a Lease is free when it has no holder, or when its record has not changed for
//    leaseDurationSeconds *as observed by this process's clock* (never by comparing the
//    holder's renewTime with our clock: nodes' clocks differ);
//  - acquire/renew is a read followed by an update carrying the read resourceVersion; a
//    409 Conflict (someone else wrote first) or a 409 AlreadyExists on create means "not
//    this time", never an error to log loudly;
//  - the leader that cannot renew within renewDeadline stops leading before the lease can
//    expire for the others (renewDeadline < leaseDuration), so two writers never overlap
//    while clocks tick at the same rate;
//  - stopping releases the lease (empty holder, 1 s duration) so a successor takes over at
//    once instead of after the lease duration.

import { CoordinationV1Api, type KubeConfig, type V1Lease } from "@kubernetes/client-node";
import type { SourceLogger } from "../policy-source/types.js";
import { apiErrorMessage as errorMessage, apiStatusCode } from "./api-errors.js";

export interface LeaseElectorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  /** Unique per candidate (the agent's pod name, else its node name). */
  identity: string;
  /** How long a lease holds without renewal (default 15 s). */
  leaseDurationMs?: number;
  /** A leader that has not renewed for this long steps down (default 10 s; < leaseDuration). */
  renewDeadlineMs?: number;
  /** Time between attempts, for leader and candidates (default 2 s). */
  retryPeriodMs?: number;
  logger: SourceLogger;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  /** Test seam. */
  now?: () => number;
}

export class LeaseElector {
  private readonly api: CoordinationV1Api;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private readonly now: () => number;
  private leading = false;
  private stopped = true;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** The last record seen and when (our clock) it last changed. */
  private observed: { rv: string; holder: string; at: number; spec: string } | undefined;
  private lastRenewAt = 0;
  /** Number of times this process became leader (for status and tests). */
  transitions = 0;

  constructor(private readonly o: LeaseElectorOptions) {
    this.api = o.kubeConfig.makeApiClient(CoordinationV1Api);
    this.leaseMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryMs = o.retryPeriodMs ?? 2_000;
    this.now = o.now ?? Date.now;
    if (this.renewDeadlineMs >= this.leaseMs)
      throw new Error("lease renewDeadline must be shorter than the lease duration");
    if (!o.identity) throw new Error("lease identity must not be empty");
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The current holder as last read from the API server ("" when free or unknown). */
  get holder(): string {
    return this.observed?.holder ?? "";
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops trying; a leader releases the lease so another candidate takes over at once. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    if (this.leading) {
      await this.release().catch((e: unknown) =>
        this.o.logger.warn({ lease: this.where(), err: errorMessage(e) }, "could not release the lease"),
      );
      this.setLeading(false);
    }
  }

  private where(): string {
    return `${this.o.namespace}/${this.o.name}`;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.schedule(this.retryMs);
      });
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (e) {
      this.o.logger.warn({ lease: this.where(), err: errorMessage(e) }, "lease update failed");
    }
    if (this.stopped) return;
    if (ok) {
      this.lastRenewAt = this.now();
      this.setLeading(true);
    } else if (this.leading && this.now() - this.lastRenewAt >= this.renewDeadlineMs) {
      this.o.logger.warn(
        { lease: this.where(), holder: this.holder },
        "could not renew the lease in time; no longer the status writer",
      );
      this.setLeading(false);
    } else if (this.leading && this.holder !== this.o.identity && this.observed) {
      // Someone else holds it now (our lease expired for them, or was taken over).
      this.setLeading(false);
    }
  }

  private setLeading(v: boolean): void {
    if (v === this.leading) return;
    this.leading = v;
    if (v) {
      this.transitions++;
      this.o.logger.info({ lease: this.where(), identity: this.o.identity }, "became the status writer");
      this.o.onStartedLeading?.();
    } else {
      this.o.logger.info(
        { lease: this.where(), identity: this.o.identity },
        "stopped being the status writer",
      );
      this.o.onStoppedLeading?.();
    }
  }

  /** One round of client-go's tryAcquireOrRenew. True when we hold the lease afterwards. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.now();
    const nowMicro = microTime(now);
    const durationS = Math.max(1, Math.round(this.leaseMs / 1000));
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
    } catch (e) {
      if (apiStatusCode(e) !== 404) throw e;
      try {
        const created = await this.api.createNamespacedLease({
          namespace: this.o.namespace,
          body: {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name: this.o.name, namespace: this.o.namespace },
            spec: {
              holderIdentity: this.o.identity,
              leaseDurationSeconds: durationS,
              acquireTime: nowMicro as unknown as Date,
              renewTime: nowMicro as unknown as Date,
              leaseTransitions: 0,
            },
          },
        });
        this.observe(created, now);
        return true;
      } catch (ce) {
        if (apiStatusCode(ce) === 409) return false; // another candidate created it first
        throw ce;
      }
    }
    this.observe(lease, now);
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    const mine = holder === this.o.identity;
    const theirDurationMs = (spec.leaseDurationSeconds ?? durationS) * 1000;
    if (!mine && holder !== "" && this.observed!.at + theirDurationMs > now) return false;
    const transitions = spec.leaseTransitions ?? 0;
    const body: V1Lease = {
      ...lease,
      spec: {
        holderIdentity: this.o.identity,
        leaseDurationSeconds: durationS,
        acquireTime: (mine ? spec.acquireTime : nowMicro) as unknown as Date,
        renewTime: nowMicro as unknown as Date,
        leaseTransitions: mine ? transitions : transitions + 1,
      },
    };
    try {
      const updated = await this.api.replaceNamespacedLease({
        name: this.o.name,
        namespace: this.o.namespace,
        body,
      });
      this.observe(updated, now);
      return true;
    } catch (e) {
      if (apiStatusCode(e) === 409) return false; // lost the race to another writer
      throw e;
    }
  }

  private async release(): Promise<void> {
    const lease = await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
    if (lease.spec?.holderIdentity !== this.o.identity) return;
    const nowMicro = microTime(this.now());
    await this.api.replaceNamespacedLease({
      name: this.o.name,
      namespace: this.o.namespace,
      body: {
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: "",
          leaseDurationSeconds: 1,
          renewTime: nowMicro as unknown as Date,
          acquireTime: nowMicro as unknown as Date,
        },
      },
    });
    this.o.logger.info({ lease: this.where() }, "released the lease");
  }

  /** Remembers when (our clock) the lease record last changed. */
  private observe(lease: V1Lease, now: number): void {
    const spec = JSON.stringify(lease.spec ?? {});
    const holder = lease.spec?.holderIdentity ?? "";
    const rv = lease.metadata?.resourceVersion ?? "";
    if (this.observed && this.observed.spec === spec && this.observed.holder === holder) {
      this.observed.rv = rv;
      return;
    }
    this.observed = { rv, holder, at: now, spec };
  }
}

/**
 * RFC 3339 with exactly six fractional digits: what kube-apiserver's MicroTime parser
 * accepts (Date#toISOString has three, which it refuses). client-node passes the string on
 * unchanged.
 */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}
