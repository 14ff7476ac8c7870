// The audit log: one JSON record per decision (pino), carrying the verdict report.
//
// Records are written after the answer has gone out: serialising a record with its report
// took about a third of the gate's time per CreateContainer (bench/, create-container), and
// containerd waits for that answer while the node's creates queue behind it. Counting
// (metrics) stays immediate; the write runs at the next turn of the event loop, in order,
// and flush() writes whatever is pending (the agent calls it when it stops and on exit).
import type { Logger } from "pino";
import type { Decision, DecisionSink } from "../decision/decision.js";
import type { AgentMetrics } from "./metrics.js";

interface Pending {
  warn: boolean;
  rec: object;
  msg: string;
}

/** Logs each decision once and counts it; the only place decisions leave the agent. */
export class AuditLog implements DecisionSink {
  private pending: Pending[] = [];
  private scheduled: NodeJS.Immediate | undefined;

  constructor(
    private readonly log: Logger,
    private readonly metrics?: AgentMetrics,
  ) {}

  /** Writes every record not yet written. */
  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const batch = this.pending;
    this.pending = [];
    for (const p of batch) {
      if (p.warn) this.log.warn(p.rec, p.msg);
      else this.log.info(p.rec, p.msg);
    }
  }

  record(d: Decision): void {
    this.metrics?.recordDecision(d);
    const rec = {
      audit: true,
      event: d.event,
      result: d.allowed ? "allow" : "deny",
      kind: d.kind,
      image: d.image,
      digest: d.digest,
      namespace: d.namespace,
      policy: d.policy,
      mode: d.mode,
      source: d.source,
      durationMs: Math.round(d.durationMs * 10) / 10,
      container: d.container,
      breakGlassUntil: d.breakGlassUntil,
      exemptBy: d.exemptBy,
      notes: d.notes,
      reason: d.reason,
      policies: d.policies,
      report: d.verdict,
    };
    // Would-be denials that were let through are warnings: someone should look at them.
    const warn = !d.allowed || d.kind === "audit" || d.kind === "break-glass" || d.kind === "failed";
    this.pending.push({ warn, rec, msg: d.message });
    this.scheduled ??= setImmediate(() => this.flush());
  }
}
