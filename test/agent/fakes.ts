// Small fakes of the engine / policy source / resolver boundaries for the agent's unit tests.
import type { DecisionSink } from "../../src/decision/decision.js";
import type { Decision } from "../../src/decision/decision.js";
import type { PolicyRef, PolicySelector, Selection, VerifyEngine } from "../../src/decision/ports.js";
import type { Subject, Verdict } from "../../src/engine/types.js";

export function policy(name: string, over: Partial<PolicyRef> = {}): PolicyRef {
  return {
    name,
    revision: `rev-${name}-0123456789abcdef`,
    mode: "Enforce",
    failurePolicy: "Closed",
    ...over,
  };
}

export function verdict(p: PolicyRef, subject: Subject, over: Partial<Verdict> = {}): Verdict {
  const allowed = over.allowed ?? true;
  return {
    allowed,
    outcome: allowed ? "verified" : "rejected",
    mode: p.mode,
    policy: { name: p.name, revision: p.revision },
    subject: { reference: subject.reference, digest: subject.digest },
    reasons: [allowed ? "signature verified" : "no cosign signature found"],
    verifiers: [],
    cached: false,
    durationMs: 1,
    decidedAt: new Date().toISOString(),
    ...over,
  };
}

type Rule = (subject: Subject, p: PolicyRef) => Verdict | Promise<Verdict>;

/** Engine fake: a rule decides; verdicts are cached by (digest, revision); single flight. */
export class FakeEngine implements VerifyEngine {
  calls: Array<{ subject: Subject; policy: string }> = [];
  cache = new Map<string, Verdict>();
  inflight = new Map<string, Promise<Verdict>>();
  constructor(public rule: Rule) {}
  cached(subject: Subject, p: PolicyRef): Verdict | undefined {
    const v = this.cache.get(`${subject.digest}|${p.revision}`);
    return v ? { ...v, cached: true } : undefined;
  }
  verify(subject: Subject, p: PolicyRef): Promise<Verdict> {
    const k = `${subject.digest}|${p.revision}`;
    const f = this.inflight.get(k);
    if (f) return f;
    this.calls.push({ subject, policy: p.name });
    const run = (async () => {
      try {
        const v = await this.rule(subject, p);
        this.cache.set(k, v);
        return v;
      } finally {
        this.inflight.delete(k);
      }
    })();
    this.inflight.set(k, run);
    return run;
  }
}

export class FakeSelector implements PolicySelector {
  byNs = new Map<string, Selection>();
  constructor(
    public inUse: PolicyRef[],
    public def: PolicyRef | undefined,
  ) {}
  select(namespace: string): Selection {
    return (
      this.byNs.get(namespace) ??
      (this.def
        ? { kind: "policy", namespace, policy: this.def }
        : { kind: "error", namespace, message: "no default", failurePolicy: "Closed" })
    );
  }
  policiesInUse(): PolicyRef[] {
    return this.inUse;
  }
  defaultPolicy(): PolicyRef | undefined {
    return this.def;
  }
}

export class MemorySink implements DecisionSink {
  decisions: Decision[] = [];
  record(d: Decision): void {
    this.decisions.push(d);
  }
}

export function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
}
