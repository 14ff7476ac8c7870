// The create-time gate: pod namespace → policy, container image → top-level digest (from
// containerd, never from the tenant), verdict from the cache or a verification bounded by
// a budget derived from containerd's NRI request timeout. Every call yields exactly one
// Decision, recorded once. The NRI adapter (nri.ts) turns a denial into PERMISSION_DENIED.
//
// Why a budget: containerd drops a plugin that misses the request deadline and then
// creates the container WITHOUT it (fail-open), and it serialises CreateContainer for the
// whole node. So the gate answers well inside the deadline: when the budget runs out it
// answers with the policy's failure policy and lets the verification continue in the
// engine (single flight + cache), so kubelet's retry is answered from the cache.
import { isDigest } from "../base/digest.js";
import { errorMessage } from "../base/errors.js";
import { classifyCriImage } from "../engine/identity.js";
import type { Subject, Verdict } from "../engine/types.js";
import { checkBinding, type RootfsBinder, type TagHistory } from "./binding.js";
import {
  type Decision,
  type DecisionEvent,
  type DecisionSink,
  formatMessage,
  judge,
  judgeFailure,
  oneLine,
  type VerdictSource,
} from "../decision/decision.js";
import type { ExemptImages } from "../decision/exempt.js";
import type { AgentMetrics } from "./metrics.js";
import {
  breakGlassUntil,
  type ImageResolver,
  type PolicyRef,
  type PolicySelector,
  type ResolvedImage,
  type Selection,
  type VerifyEngine,
} from "../decision/ports.js";

/** The CRI annotation carrying the image name kubelet asked for (protocols.md §3.1). */
export const IMAGE_NAME_ANNOTATION = "io.kubernetes.cri.image-name";

export interface GateOptions<P extends PolicyRef> {
  selector: PolicySelector<P>;
  engine: VerifyEngine<P>;
  resolver: ImageResolver;
  exemptImages: ExemptImages;
  exemptNamespaces: readonly string[];
  /** Fraction of the NRI request timeout the gate may spend. */
  budgetFraction: number;
  /** The request timeout containerd announced in Configure (or the configured default). */
  requestTimeoutMs: () => number;
  sink: DecisionSink;
  metrics?: AgentMetrics;
  now?: () => number;
  /** containerd's record of the container's rootfs; allowed creates must match it (binding.ts). */
  binder?: RootfsBinder;
  /** Digests each name pointed at recently: the fallback when the rootfs cannot be read. */
  tagHistory?: TagHistory;
}

/** The parts of an NRI CreateContainer request the gate reads. */
export interface GatePod {
  id?: string;
  uid?: string;
  name?: string;
  namespace?: string;
}
export interface GateContainer {
  id?: string;
  name?: string;
  annotations?: Record<string, string>;
}

export interface EvaluateInput {
  event: DecisionEvent;
  namespace: string;
  imageName: string;
  /** A digest the runtime itself supplied (a newer NRI); preferred over a lookup. */
  digestHint?: string;
  container?: { id: string; name: string; pod: string; podUid?: string };
  /**
   * When the answer must be given, on the monotonic clock (performance.now ms); undefined =
   * wait for the verification. Turned into a wall-clock deadline only for each call to
   * containerd (wallClockDeadline).
   */
  answerBy?: number;
}

/**
 * A monotonic time (performance.now ms) as the epoch-ms deadline a gRPC call to containerd
 * takes, read at the call: a wall-clock step earlier in the create then neither lengthens nor
 * cuts what containerd is given.
 */
function wallClockDeadline(at: number): number {
  return Date.now() + (at - performance.now());
}

/** What judging one image record needs from the policy selection. */
interface Judging<P extends PolicyRef> {
  policy: P;
  pol: { name: string; revision: string };
  bgUntil: number | undefined;
  notes: string[] | undefined;
}

export class Gate<P extends PolicyRef = PolicyRef> {
  private readonly now: () => number;
  private readonly exemptNs: Set<string>;

  constructor(private readonly o: GateOptions<P>) {
    this.now = o.now ?? Date.now;
    this.exemptNs = new Set(o.exemptNamespaces);
  }

  /** The CreateContainer check. `deadline` is containerd's deadline for this request (epoch ms). */
  async createContainer(
    pod: GatePod,
    container: GateContainer,
    ctx: { deadline?: number } = {},
  ): Promise<Decision> {
    // The budget runs on the monotonic clock, as containerd measures its timeout: a wall-clock
    // step (NTP, VM resume) mid-create must neither lengthen nor cut it. containerd's deadline
    // arrives in epoch ms and is converted once, here.
    const start = performance.now();
    const t = this.o.requestTimeoutMs();
    const f = this.o.budgetFraction;
    let answerBy = start + f * t;
    // If part of the deadline already went by (e.g. in containerd's queue), keep the same
    // safety margin before it.
    if (ctx.deadline !== undefined && Number.isFinite(ctx.deadline))
      answerBy = Math.min(answerBy, start + (ctx.deadline - Date.now()) - (1 - f) * t);
    const annotations = container.annotations ?? {};
    return this.evaluate({
      event: "create",
      namespace: pod.namespace ?? "",
      imageName: annotations[IMAGE_NAME_ANNOTATION] ?? "",
      digestHint: digestFromRequest(container),
      container: {
        id: container.id ?? "",
        name: container.name ?? "",
        pod: pod.name ?? "",
        ...(pod.uid ? { podUid: pod.uid } : {}),
      },
      answerBy,
    });
  }

  /** Decides one (namespace, image) and records the decision. Never throws. */
  async evaluate(input: EvaluateInput): Promise<Decision> {
    const start = this.now();
    // Durations on the monotonic clock: a wall-clock step (NTP, VM resume) must not make the
    // recorded time differ from what containerd measured against its own deadline.
    const t0 = performance.now();
    const internal = (e: unknown): Decision =>
      this.finish(input, {
        allowed: false,
        kind: "failed",
        reason: `internal error: ${oneLine(errorMessage(e), 300)}`,
        source: "none",
      });
    // The selection decide() made, reused by the binding check (one selection per decision).
    const chosen: { sel?: Selection<P> } = {};
    let d = await this.decide(input, start, t0, chosen).catch(internal);
    const binder = this.o.binder;
    if (binder && d.allowed && d.digest && input.event === "create" && input.container) {
      // A match containerd already told of needs no wait; anything else goes through checkBinding.
      if (binder.bindNow?.(input.container.id, d.digest)?.kind !== "match")
        d = await this.bindToContainer(input, d, chosen.sel).catch(internal);
    }
    d.durationMs = performance.now() - t0;
    this.o.sink.record(d);
    return d;
  }

  /** Closes the tag-move race for an allowed create (binding.ts); denies when the content differs. */
  private async bindToContainer(
    input: EvaluateInput,
    d: Decision,
    /** The selection the decision was made under (one selection per decision). */
    sel: Selection<P> | undefined,
  ): Promise<Decision> {
    const answerBy = input.answerBy ?? performance.now() + 10_000;
    const policy = sel?.kind === "policy" ? sel.policy : undefined;
    const r = await checkBinding({
      binder: this.o.binder!,
      history: this.o.tagHistory,
      containerId: input.container!.id,
      name: d.image,
      digest: d.digest!,
      deadline: wallClockDeadline(Math.max(answerBy, performance.now() + 250)),
      passes: async (other) => {
        if (d.kind === "exempt")
          return this.o.exemptImages.match(d.image, other) !== undefined
            ? { allowed: true, reason: "exempt" }
            : { allowed: false, reason: "it matches no exempt image pattern" };
        if (!policy) return { allowed: false, reason: "no policy applies" };
        const otherSubject: Subject = { reference: d.image, digest: other, namespace: input.namespace };
        const c = this.o.engine.cached(otherSubject, policy);
        const v = c
          ? ({ kind: "verdict", verdict: c } as const)
          : await this.bounded(otherSubject, policy, answerBy);
        if (v.kind === "verdict") {
          const j = judge(v.verdict, policy, undefined, this.now());
          return { allowed: j.allowed, reason: j.reason };
        }
        return {
          allowed: false,
          reason: v.kind === "timeout" ? "its verification did not finish in time" : v.message,
        };
      },
    });
    if (r.ok) return r.note ? { ...d, notes: [...(d.notes ?? []), r.note] } : d;
    const bg = sel?.kind === "policy" ? breakGlassUntil(sel.breakGlass) : undefined;
    const j = judgeFailure(policy, "Closed", bg, this.now());
    return this.finish(
      { ...input, imageName: d.image },
      {
        ...j,
        reason: r.reason,
        digest: d.digest,
        source: d.source,
        policy: d.policy,
        mode: d.mode,
        verdict: d.verdict,
        breakGlassUntil: j.kind === "break-glass" ? bg : undefined,
        notes: d.notes,
      },
    );
  }

  /** `start`: wall clock (policy selection, break-glass); `t0`: monotonic (the budget). */
  private async decide(
    input: EvaluateInput,
    start: number,
    t0: number,
    chosen: { sel?: Selection<P> },
  ): Promise<Decision> {
    const { namespace } = input;
    if (this.exemptNs.has(namespace)) {
      return this.finish(input, {
        allowed: true,
        kind: "exempt",
        reason: `namespace "${namespace}" is exempt by configuration`,
        source: "none",
        exemptBy: `namespace:${namespace}`,
      });
    }
    let sel: Selection<P>;
    try {
      sel = this.o.selector.select(namespace, new Date(start));
    } catch (e) {
      sel = { kind: "error", namespace, message: errorMessage(e), failurePolicy: "Closed" };
    }
    chosen.sel = sel;
    if (sel.kind === "exempt") {
      return this.finish(input, {
        allowed: true,
        kind: "exempt",
        reason: oneLine(sel.reason),
        source: "none",
        exemptBy: `namespace:${namespace}`,
      });
    }
    if (sel.kind === "error") {
      return this.finish(input, {
        allowed: false,
        kind: "failed",
        reason: `no usable policy for namespace: ${oneLine(sel.message, 300)}`,
        source: "none",
      });
    }
    const policy = sel.policy;
    const bgUntil = breakGlassUntil(sel.breakGlass);
    const pol = { name: policy.name, revision: policy.revision };
    const notes = sel.notes && sel.notes.length > 0 ? sel.notes : undefined;

    // Not knowing which content containerd will start is never a verification failure:
    // denied whatever the failure policy (mode Audit and a valid break-glass still apply).
    const unidentified = (why: string) => {
      const j = judgeFailure(policy, "Closed", bgUntil, this.now());
      return this.finish(input, {
        allowed: j.allowed,
        kind: j.kind === "failed" ? "rejected" : j.kind,
        reason: `cannot tell which image content containerd would start: ${oneLine(why, 400)} (denied under every failure policy)`,
        source: "none",
        policy: pol,
        mode: policy.mode,
        breakGlassUntil: bgUntil,
        notes,
      });
    };

    // Image → the content containerd will start: from containerd (or the request itself, if
    // a newer NRI carries the digest). An image ID stands for every record carrying it.
    let targets: ResolvedImage[];
    let imageId: string | undefined;
    if (input.digestHint && isDigest(input.digestHint)) {
      const c = classifyCriImage(input.imageName);
      if (c.kind !== "name")
        return unidentified(`image ${JSON.stringify(input.imageName)} is not an image name`);
      targets = [{ reference: c.stored, digest: input.digestHint }];
    } else {
      if (!input.imageName)
        return unidentified("the request names no image (annotation io.kubernetes.cri.image-name missing)");
      try {
        const forContainer = input.event === "create" ? input.container?.id || undefined : undefined;
        // At once when the create's own events have arrived (image-cache.ts), else asked.
        const r =
          (forContainer && this.o.resolver.resolveNow?.(input.imageName, forContainer)) ||
          (await this.o.resolver.resolve(input.imageName, {
            deadline: wallClockDeadline(input.answerBy ?? performance.now() + 10_000),
            forContainer,
          }));
        targets = r.records && r.records.length > 0 ? r.records : [r];
        imageId = r.imageId;
      } catch (e) {
        return unidentified(errorMessage(e));
      }
    }
    const ctx: Judging<P> = { policy, pol, bgUntil, notes };
    if (targets.length === 1) {
      const t = targets[0]!;
      return this.judgeTarget({ ...input, imageName: t.reference }, t0, ctx, t);
    }
    // Several records carry the image ID: containerd may start any of them, so every one
    // must pass, each judged under its own name.
    const each = await Promise.all(
      targets.map((t) => this.judgeTarget({ ...input, imageName: t.reference }, t0, ctx, t)),
    );
    const denied = each.find((d) => !d.allowed);
    const pick = denied ?? each[0]!;
    const names = targets.map((t) => t.reference).join(", ");
    return this.finish(input, {
      ...pick,
      reason: denied
        ? `image ID ${imageId ?? input.imageName} is stored as ${names}; ${denied.image} is not allowed: ${denied.reason}`
        : `image ID ${imageId ?? input.imageName} is stored as ${names}; every one is allowed: ${pick.reason}`,
    });
  }

  /** The decision for one image record (name + top-level digest) under the selected policy. */
  private async judgeTarget(
    input: EvaluateInput,
    t0: number,
    ctx: Judging<P>,
    target: ResolvedImage,
  ): Promise<Decision> {
    const { policy, pol, bgUntil, notes } = ctx;
    const { reference, digest } = target;
    const failed = (reason: string, source: VerdictSource, extra: Partial<Decision> = {}) => {
      const j = judgeFailure(policy, policy.failurePolicy, bgUntil, this.now());
      return this.finish(input, {
        ...j,
        reason,
        source,
        policy: pol,
        mode: policy.mode,
        breakGlassUntil: bgUntil,
        notes,
        ...extra,
      });
    };

    const exemptBy = this.o.exemptImages.match(reference, digest);
    if (exemptBy !== undefined) {
      return this.finish(input, {
        allowed: true,
        kind: "exempt",
        reason: `image matches exempt pattern "${exemptBy}"`,
        digest,
        source: "none",
        exemptBy: `image:${exemptBy}`,
      });
    }

    // Verdict: name-dependent parts for this reference + cached signature results, else a
    // verification bounded by what is left of the budget.
    // The namespace too: CEL conditions may read it (judged per request over cached results).
    const subject: Subject = { reference, digest, namespace: input.namespace };
    let verdict = this.o.engine.cached(subject, policy);
    let source: VerdictSource = "cache";
    if (verdict) this.o.metrics?.cacheLookup("hit");
    else {
      this.o.metrics?.cacheLookup("miss");
      const r = await this.bounded(subject, policy, input.answerBy);
      if (r.kind === "timeout") {
        this.o.metrics?.budgetExhausted.inc();
        return failed(
          `verification did not finish within the ${Math.max(0, Math.round((input.answerBy ?? t0) - t0))} ms create-time budget (failure policy ${policy.failurePolicy}; still verifying in the background)`,
          "budget",
          { digest },
        );
      }
      if (r.kind === "error")
        return failed(`verification could not complete: ${oneLine(r.message, 300)}`, "verify", { digest });
      verdict = r.verdict;
      source = "verify";
    }
    const j = judge(verdict, policy, bgUntil, this.now());
    return this.finish(input, {
      ...j,
      digest,
      source,
      policy: { name: verdict.policy.name || pol.name, revision: verdict.policy.revision || pol.revision },
      mode: policy.mode,
      verdict,
      breakGlassUntil: j.kind === "break-glass" ? bgUntil : undefined,
      notes,
    });
  }

  private async bounded(
    subject: Subject,
    policy: P,
    answerBy: number | undefined,
  ): Promise<
    { kind: "verdict"; verdict: Verdict } | { kind: "timeout" } | { kind: "error"; message: string }
  > {
    let p: Promise<Verdict>;
    try {
      // No abort signal: a verification we stop waiting for must keep running and fill the cache.
      p = this.o.engine.verify(subject, policy);
    } catch (e) {
      return { kind: "error", message: errorMessage(e) };
    }
    const settled = p.then(
      (verdict) => ({ kind: "verdict" as const, verdict }),
      (e: unknown) => ({ kind: "error" as const, message: errorMessage(e) }),
    );
    if (answerBy === undefined) return settled;
    const remaining = answerBy - performance.now();
    if (remaining <= 0) return { kind: "timeout" };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<{ kind: "timeout" }>((resolve) => {
      timer = setTimeout(() => resolve({ kind: "timeout" }), remaining);
    });
    try {
      return await Promise.race([settled, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private finish(
    input: EvaluateInput,
    d: Pick<Decision, "allowed" | "kind" | "reason" | "source"> &
      Partial<Omit<Decision, "breakGlassUntil">> & { breakGlassUntil?: number | string },
  ): Decision {
    const bg = d.breakGlassUntil;
    const decision: Decision = {
      event: input.event,
      allowed: d.allowed,
      kind: d.kind,
      reason: d.reason,
      message: "",
      image: input.imageName,
      digest: d.digest,
      namespace: input.namespace,
      policy: d.policy,
      mode: d.mode,
      source: d.source,
      durationMs: 0, // set by evaluate() on the monotonic clock
      container: input.container,
      verdict: d.verdict,
      breakGlassUntil:
        bg === undefined ? undefined : typeof bg === "number" ? new Date(bg).toISOString() : bg,
      exemptBy: d.exemptBy,
      notes: d.notes,
    };
    decision.message = formatMessage(decision);
    return decision;
  }
}

/**
 * NRI v0.8.0 requests carry no image digest (protocols.md §3.1). Newer NRI versions may
 * add one; read it defensively so the gate prefers it the day the runtime supplies it.
 */
export function digestFromRequest(container: GateContainer): string | undefined {
  const c = container as GateContainer & { imageDigest?: unknown; image?: { digest?: unknown } };
  if (typeof c.imageDigest === "string" && c.imageDigest) return c.imageDigest;
  if (c.image && typeof c.image.digest === "string" && c.image.digest) return c.image.digest;
  return undefined;
}
