// Prometheus metrics of the agent, in a private registry (no global state, testable).
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Decision } from "../decision/decision.js";
import type { ProviderStatus } from "../engine/registry/credentials/resolver.js";
import type { PolicyOutcome } from "../policy-source/types.js";

/**
 * Counts per label set kept as plain numbers and copied into the prom-client counter when it is
 * scraped: a decision costs one Map lookup instead of prom-client's label validation and
 * hashing on every call (the create path's hot spot).
 */
class LabelCounts<L extends string> {
  private readonly counts = new Map<string, { labels: Record<L, string>; n: number }>();

  add(key: string, labels: () => Record<L, string>): void {
    const e = this.counts.get(key);
    if (e) e.n++;
    else this.counts.set(key, { labels: labels(), n: 1 });
  }

  copyInto(c: Counter<L>): void {
    c.reset();
    for (const e of this.counts.values()) c.inc(e.labels, e.n);
  }
}

/** Sets a one-label counter to counts kept elsewhere (read at each scrape; they only grow). */
function setCounts<L extends string>(
  c: Counter<L>,
  label: L,
  counts: Record<string, number> | undefined,
): void {
  c.reset();
  for (const [value, n] of Object.entries(counts ?? {})) c.inc({ [label]: value } as Record<L, string>, n);
}

type DecisionLabel = "event" | "result" | "kind" | "mode" | "policy" | "source";

/** What the image-name cache counts (src/containerd/image-cache.ts stats). */
export interface ImageCacheCounts {
  hits: number;
  orderedHits: number;
  misses: number;
  bypassed: number;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly decisionCounts = new LabelCounts<DecisionLabel>();
  readonly decisions: Counter<DecisionLabel> = new Counter({
    name: "tollgate_decisions_total",
    help: "Decisions by event (create|pull|sync), result (allow|deny), kind, mode, policy and verdict source.",
    labelNames: ["event", "result", "kind", "mode", "policy", "source"] as const,
    registers: [this.registry],
    collect: (): void => this.decisionCounts.copyInto(this.decisions),
  });
  private readonly cacheCounts = { hit: 0, miss: 0 };
  readonly cache: Counter<"result"> = new Counter({
    name: "tollgate_verdict_cache_total",
    help: "Verdict cache lookups made by the create-time gate, by result (hit|miss).",
    labelNames: ["result"] as const,
    registers: [this.registry],
    collect: (): void => {
      this.cache.reset();
      for (const result of ["hit", "miss"] as const)
        if (this.cacheCounts[result] > 0) this.cache.inc({ result }, this.cacheCounts[result]);
    },
  });

  /** One create-time verdict cache lookup. */
  cacheLookup(result: "hit" | "miss"): void {
    this.cacheCounts[result]++;
  }
  readonly verifyLatency = new Histogram({
    name: "tollgate_verification_duration_seconds",
    help: "Time to a verdict as seen by the caller (cache hits excluded), by event.",
    labelNames: ["event"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });
  readonly registryErrors = new Counter({
    name: "tollgate_registry_errors_total",
    help: "Verifications that could not complete, by error code.",
    labelNames: ["code"] as const,
    registers: [this.registry],
  });
  readonly budgetExhausted = new Counter({
    name: "tollgate_budget_exhausted_total",
    help: "Create-time checks answered by the failure policy because the budget ran out.",
    registers: [this.registry],
  });
  readonly nriConnected = new Gauge({
    name: "tollgate_nri_connected",
    help: "1 while the NRI plugin is registered with containerd.",
    registers: [this.registry],
  });
  readonly nriState = new Gauge({
    name: "tollgate_nri_state",
    help: "NRI plugin connection state (1 for the current state).",
    labelNames: ["state"] as const,
    registers: [this.registry],
  });
  readonly nonCompliant = new Gauge({
    name: "tollgate_noncompliant_containers",
    help: "Running containers found non-compliant by the last Synchronize audit.",
    registers: [this.registry],
  });
  readonly syncAudits = new Counter({
    name: "tollgate_sync_audits_total",
    help: "Synchronize audits completed.",
    registers: [this.registry],
  });

  readonly processErrors = new Counter({
    name: "tollgate_process_errors_total",
    help: "Errors that escaped every handler (logged; the agent kept serving), by kind.",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  /** The engine's bounds (limits.ts), read at each scrape; set by watchLimits. */
  private limits: (() => { running: number; queued: number; bytes: number; refused: number }) | undefined;
  readonly verifications: Gauge<"state"> = new Gauge({
    name: "tollgate_verifications",
    help: "Verifications within the agent's bounds, by state (running|queued).",
    labelNames: ["state"] as const,
    registers: [this.registry],
    collect: (): void => {
      const s = this.limits?.();
      this.verifications.set({ state: "running" }, s?.running ?? 0);
      this.verifications.set({ state: "queued" }, s?.queued ?? 0);
    },
  });
  readonly bytesInFlight: Gauge = new Gauge({
    name: "tollgate_verification_bytes_in_flight",
    help: "Registry response bytes held by running verifications.",
    registers: [this.registry],
    collect: (): void => {
      this.bytesInFlight.set(this.limits?.().bytes ?? 0);
    },
  });
  readonly capacityRefusals: Gauge = new Gauge({
    name: "tollgate_verification_capacity_refusals",
    help: "Verifications or fetches refused because a bound was reached, since start.",
    registers: [this.registry],
    collect: (): void => {
      this.capacityRefusals.set(this.limits?.().refused ?? 0);
    },
  });

  /** How allowed creates found their container's rootfs snapshot (rootfs.ts counts); set by watchBinding. */
  private binding: (() => { fromEvents: number; statCalls: number }) | undefined;
  readonly rootfsLookups: Counter<"via"> = new Counter({
    name: "tollgate_rootfs_lookups_total",
    help: "Container rootfs snapshots checked at create time, by how they were found (event: containerd's /snapshot/prepare event; stat: a Stat call to containerd).",
    labelNames: ["via"] as const,
    registers: [this.registry],
    collect: (): void => {
      const c = this.binding?.();
      setCounts(this.rootfsLookups, "via", c && { event: c.fromEvents, stat: c.statCalls });
    },
  });

  watchBinding(counts: () => { fromEvents: number; statCalls: number }): void {
    this.binding = counts;
  }

  /** The image-name cache's counts (image-cache.ts), read at each scrape; set by watchImageCache. */
  private imageCache: (() => ImageCacheCounts) | undefined;
  readonly imageCacheLookups: Counter<"result"> = new Counter({
    name: "tollgate_image_cache_lookups_total",
    help: "Image name → digest lookups by the gate (creates, Synchronize audit), by how they were answered (hit_at_once: the create's own containerd event had arrived; hit: after letting waiting I/O run; miss: asked containerd and cached; bypassed: the event stream was not live, asked containerd).",
    labelNames: ["result"] as const,
    registers: [this.registry],
    collect: (): void => {
      const c = this.imageCache?.();
      setCounts(
        this.imageCacheLookups,
        "result",
        c && {
          hit_at_once: c.orderedHits,
          hit: c.hits - c.orderedHits,
          miss: c.misses,
          bypassed: c.bypassed,
        },
      );
    },
  });

  watchImageCache(counts: () => ImageCacheCounts): void {
    this.imageCache = counts;
  }

  watchLimits(stats: () => { running: number; queued: number; bytes: number; refused: number }): void {
    this.limits = stats;
  }
  /** The registry credential providers' counts (resolver.ts), read at each scrape. */
  private credentialProviders: (() => ProviderStatus[]) | undefined;
  readonly credentialRequests: Counter<"provider" | "type"> = new Counter({
    name: "tollgate_registry_credential_requests_total",
    help: "Calls made to each registry credential provider (cache hits excluded), by provider name and type.",
    labelNames: ["provider", "type"] as const,
    registers: [this.registry],
    collect: (): void => this.readCredentialProviders(this.credentialRequests, (p) => p.calls),
  });
  readonly credentialErrors: Counter<"provider" | "type"> = new Counter({
    name: "tollgate_registry_credential_errors_total",
    help: "Registry credential provider calls that failed (authentication could not be attempted), by provider name and type.",
    labelNames: ["provider", "type"] as const,
    registers: [this.registry],
    collect: (): void => this.readCredentialProviders(this.credentialErrors, (p) => p.failures),
  });

  watchCredentialProviders(status: () => ProviderStatus[]): void {
    this.credentialProviders = status;
  }

  /** Counters mirror the resolver's own counts (it outlives no scrape, it only grows). */
  private readCredentialProviders(c: Counter<"provider" | "type">, n: (p: ProviderStatus) => number): void {
    c.reset();
    for (const p of this.credentialProviders?.() ?? []) c.inc({ provider: p.name, type: p.type }, n(p));
  }

  readonly evictions = new Counter({
    name: "tollgate_evictions_total",
    help: "Containers created while the plugin was away that evictOnSync stopped through CRI (result: stopped, failed).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });

  /** The policy source's outcomes, read at each scrape; set by watchPolicies. */
  private outcomes: (() => PolicyOutcome[]) | undefined;
  readonly policyReady: Gauge<"policy"> = new Gauge({
    name: "tollgate_policy_ready",
    help: "1 when the policy's latest document is in force on this node, 0 when it was refused (an earlier revision, or none, decides).",
    labelNames: ["policy"] as const,
    registers: [this.registry],
    collect: (): void => {
      this.policyReady.reset();
      for (const o of this.outcomes?.() ?? [])
        this.policyReady.set({ policy: o.name }, o.revision !== undefined && !o.rejected ? 1 : 0);
    },
  });
  readonly buildInfo = new Gauge({
    name: "tollgate_build_info",
    help: "Always 1; labels: the Tollgate version and the Node.js version running it.",
    labelNames: ["version", "node"] as const,
    registers: [this.registry],
  });
  private leader: (() => boolean) | undefined;
  readonly statusWriter: Gauge = new Gauge({
    name: "tollgate_status_writer",
    help: "1 while this agent holds the Lease that makes it the cluster's ImagePolicy status writer.",
    registers: [this.registry],
    collect: (): void => {
      this.statusWriter.set(this.leader?.() ? 1 : 0);
    },
  });

  watchPolicies(outcomes: () => PolicyOutcome[]): void {
    this.outcomes = outcomes;
  }

  watchLeadership(isLeader: () => boolean): void {
    this.leader = isLeader;
  }

  setBuildInfo(version: string): void {
    this.buildInfo.reset();
    this.buildInfo.set({ version, node: process.version }, 1);
  }

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    // The event-loop lag histogram samples with a repeating timer: prom-client's default of
    // 10 ms wakes the agent 100 times a second, idle or not, and each wake-up competes with
    // containerd for the node's CPU (about 0.1 ms of CPU each on a 2-core test VM). 100 ms
    // still catches every stall worth alerting on.
    if (opts.defaultMetrics)
      collectDefaultMetrics({
        register: this.registry,
        prefix: "tollgate_process_",
        eventLoopMonitoringPrecision: 100,
      });
  }

  recordDecision(d: Decision): void {
    const result = d.allowed ? "allow" : "deny";
    const mode = d.mode ?? "";
    const policy = d.policy?.name ?? "";
    this.decisionCounts.add(`${d.event}\0${result}\0${d.kind}\0${mode}\0${policy}\0${d.source}`, () => ({
      event: d.event,
      result,
      kind: d.kind,
      mode,
      policy,
      source: d.source,
    }));
    if (d.source === "verify" || d.source === "budget")
      this.verifyLatency.observe({ event: d.event }, d.durationMs / 1000);
    if (d.verdict?.outcome === "failed" && d.verdict.failure)
      this.registryErrors.inc({ code: d.verdict.failure.code });
  }

  setNriState(state: string): void {
    this.nriState.reset();
    this.nriState.set({ state }, 1);
    this.nriConnected.set(
      state === "registered" || state === "connected" || state === "synchronized" ? 1 : 0,
    );
  }
}
