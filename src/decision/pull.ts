// The pull-time decision, shared by the agent's local API and the pull verifier's
// in-process fallback. A pull has no namespace (containerd's bindir verifier only gets the
// reference and the digest), so the question is configurable:
//   default-policy    – the image must satisfy the default policy;
//   any-policy-in-use – at least one policy some namespace uses must allow it (the create-time
//                       gate then enforces each namespace's own policy).
// Either way, verdicts for every policy in use are started ("pre-warmed") so the
// CreateContainer checks that follow the pull are answered from the cache.
import { errorMessage } from "../base/errors.js";
import type { Descriptor, Subject, Verdict } from "../engine/types.js";
import { type Decision, type DecisionKind, type DecisionSink, formatMessage, judge, judgeFailure, oneLine } from "./decision.js";
import type { ExemptImages } from "./exempt.js";
import type { PolicyRef, PolicySelector, VerifyEngine } from "./ports.js";
import { forSomeNamespace } from "./pull-namespaces.js";
import type { PullScope } from "./pull-scope.js";

export interface PullRequest {
  name: string;
  digest: string;
  descriptor?: Descriptor;
}

export interface PullDeciderOptions<P extends PolicyRef> {
  selector: PolicySelector<P>;
  engine: VerifyEngine<P>;
  exemptImages: ExemptImages;
  mode: "default-policy" | "any-policy-in-use";
  /** Answer within this many ms (below the verifier binary's own timeout). */
  timeoutMs: number;
  /** Applied when there is no policy to ask. */
  failurePolicy: "Closed" | "Open";
  sink: DecisionSink;
  /** Reference normalisation (the engine's); identity when absent. */
  normalize?: (name: string) => string;
  /** Exempt-namespace images and break-glass at pull time (pull-scope.ts). */
  scope?: PullScope;
  now?: () => number;
}

type Outcome = { kind: "verdict"; verdict: Verdict } | { kind: "error"; message: string };

export class PullDecider<P extends PolicyRef = PolicyRef> {
  private readonly now: () => number;
  constructor(private readonly o: PullDeciderOptions<P>) {
    this.now = o.now ?? Date.now;
  }

  /** Decides one pull and records the decision. Never throws. */
  async decide(req: PullRequest): Promise<Decision> {
    // Durations and the answer-by time on the monotonic clock: a wall-clock step (NTP, VM
    // resume) neither lengthens nor cuts the time containerd's verifier call waits.
    const t0 = performance.now();

    let d: Decision;
    try {
      d = await this.decideInner(req, t0);
    } catch (e) {
      d = this.finish(req.name, req.digest, {
        allowed: this.o.failurePolicy === "Open",
        kind: "failed",
        reason: `internal error: ${oneLine(errorMessage(e), 300)}`,
      });
    }
    if (this.o.scope) d = this.o.scope.applyBreakGlass(d, this.now());
    d.durationMs = performance.now() - t0;
    this.o.sink.record(d);
    return d;
  }

  private async decideInner(req: PullRequest, t0: number): Promise<Decision> {
    let reference = req.name;
    try {
      reference = this.o.normalize ? this.o.normalize(req.name) : req.name;
    } catch {
      // An unparsable reference is still checked by digest; the engine reports the problem.
    }
    const digest = req.digest;
    const exemptBy = this.o.exemptImages.match(reference, digest);
    if (exemptBy !== undefined) {
      return this.finish(reference, digest, {
        allowed: true,
        kind: "exempt",
        reason: `image matches exempt pattern "${exemptBy}"`,
        exemptBy: `image:${exemptBy}`,
      });
    }
    const nsImage = this.o.scope?.exemptNamespaceImage(reference, digest);
    if (nsImage !== undefined) {
      return this.finish(reference, digest, {
        allowed: true,
        kind: "exempt",
        reason: this.o.scope!.exemptNamespaceReason(nsImage),
        exemptBy: `namespace-image:${nsImage}`,
      });
    }
    const subject: Subject = { reference, digest, descriptor: req.descriptor };
    const inUse = dedupe(this.o.selector.policiesInUse());
    const def = this.o.selector.defaultPolicy();
    const required =
      this.o.mode === "default-policy" ? (def ? [def] : []) : inUse.length > 0 ? inUse : def ? [def] : [];
    if (required.length === 0) {
      const j = judgeFailure(undefined, this.o.failurePolicy, undefined, this.now());
      return this.finish(reference, digest, {
        ...j,
        reason:
          this.o.mode === "default-policy"
            ? "no default policy is configured or loaded"
            : "no policy is in use and no default policy is loaded",
      });
    }
    // Start every policy in use (pre-warm), then wait only for the ones that decide.
    const all = dedupe([...required, ...inUse]);
    const runs = new Map<string, Promise<Outcome>>();
    for (const p of all) runs.set(key(p), this.run(subject, p));
    const answerBy = t0 + this.o.timeoutMs; // monotonic (performance.now)

    if (this.o.mode === "default-policy") {
      const p = required[0]!;
      const r = await withDeadline(runs.get(key(p))!, answerBy);
      return this.finish(reference, digest, { ...this.judgeOne(p, r), policy: ref(p), mode: p.mode });
    }
    // any-policy-in-use: allow as soon as one allows.
    const results = new Map<string, ReturnType<PullDecider<P>["judgeOne"]>>();
    const pending = new Set(required.map(key));
    const winner = await new Promise<P | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), Math.max(0, answerBy - performance.now()));
      for (const p of required) {
        runs.get(key(p))!.then((r) => {
          const j = this.judgeOne(p, r);
          results.set(key(p), j);
          pending.delete(key(p));
          if (j.allowed) {
            clearTimeout(timer);
            resolve(p);
          } else if (pending.size === 0) {
            clearTimeout(timer);
            resolve(undefined);
          }
        });
      }
    });
    const per = required.map((p) => {
      const j = results.get(key(p)) ?? this.judgeOne(p, { kind: "timeout" });
      return {
        name: p.name,
        revision: p.revision,
        allowed: j.allowed,
        kind: j.kind,
        reason: j.reason,
        verdict: j.verdict,
      };
    });
    const policies = per.map(({ verdict: _v, ...rest }) => rest);
    if (winner) {
      const j = results.get(key(winner))!;
      return this.finish(reference, digest, {
        ...j,
        policy: ref(winner),
        mode: winner.mode,
        policies,
      });
    }
    // A policy whose verification did not finish counts with its failure policy.
    const open = per.find((x) => x.allowed);
    if (open) {
      return this.finish(reference, digest, {
        allowed: true,
        kind: open.kind,
        reason: open.reason,
        policy: { name: open.name, revision: open.revision },
        policies,
      });
    }
    // The pull's text reaches the pulling pod's Events, and a pull has no namespace: with more
    // than one policy in use it must not name other tenants' policies or their reasons. Each
    // policy's reason stays in the audit record (`policies`, root-only log).
    const reason =
      per.length === 1
        ? per[0]!.reason
        : `no policy in use on this node allows it (${per.length} policies checked; each one's reason is in the agent's audit log)`;
    const only = per.length === 1 ? required[0] : undefined;
    return this.finish(reference, digest, {
      allowed: false,
      kind: per.every((x) => x.kind === "failed") ? "failed" : "rejected",
      reason,
      policy: only ? ref(only) : undefined,
      mode: only?.mode,
      verdict: per.length === 1 ? per[0]!.verdict : undefined,
      policies,
    });
  }

  private run(subject: Subject, p: P): Promise<Outcome> {
    try {
      const c = this.o.engine.cached(subject, p);
      const v = c ? Promise.resolve(c) : this.o.engine.verify(subject, p);
      // A verdict a `request.namespace` condition decided is asked again for the namespaces using p.
      return v
        .then((x) => forSomeNamespace(this.o.engine, this.o.selector, subject, p, x, new Date(this.now())))
        .then(
          (verdict): Outcome => ({ kind: "verdict", verdict }),
          (e: unknown): Outcome => ({ kind: "error", message: errorMessage(e) }),
        );
    } catch (e) {
      return Promise.resolve({ kind: "error", message: errorMessage(e) });
    }
  }

  private judgeOne(
    p: P,
    r: Outcome | { kind: "timeout" },
  ): { allowed: boolean; kind: DecisionKind; reason: string; verdict?: Verdict } {
    const now = this.now();
    if (r.kind === "verdict") return { ...judge(r.verdict, p, undefined, now), verdict: r.verdict };
    const reason =
      r.kind === "timeout"
        ? `verification did not finish within ${this.o.timeoutMs} ms (failure policy ${p.failurePolicy})`
        : `verification could not complete: ${oneLine(r.message, 300)} (failure policy ${p.failurePolicy})`;
    return { ...judgeFailure(p, p.failurePolicy, undefined, now), reason };
  }

  private finish(
    image: string,
    digest: string,
    d: Pick<Decision, "allowed" | "kind" | "reason"> & Partial<Decision>,
  ): Decision {
    const decision: Decision = {
      event: "pull",
      allowed: d.allowed,
      kind: d.kind,
      reason: d.reason,
      message: "",
      image,
      digest,
      policy: d.policy,
      mode: d.mode,
      source: d.verdict ? (d.verdict.cached ? "cache" : "verify") : "none",
      durationMs: 0, // set by decide() on the monotonic clock
      verdict: d.verdict,
      policies: d.policies,
      exemptBy: d.exemptBy,
    };
    decision.message = formatMessage(decision);
    return decision;
  }
}

function key(p: PolicyRef): string {
  return `${p.name}\u0000${p.revision}`;
}
function ref(p: PolicyRef): { name: string; revision: string } {
  return { name: p.name, revision: p.revision };
}
function dedupe<P extends PolicyRef>(ps: P[]): P[] {
  const seen = new Set<string>();
  return ps.filter((p) => {
    if (seen.has(key(p))) return false;
    seen.add(key(p));
    return true;
  });
}

async function withDeadline(p: Promise<Outcome>, answerBy: number): Promise<Outcome | { kind: "timeout" }> {
  const remaining = answerBy - performance.now();
  if (remaining <= 0) return { kind: "timeout" };
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<{ kind: "timeout" }>((r) => {
        timer = setTimeout(() => r({ kind: "timeout" }), remaining);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
