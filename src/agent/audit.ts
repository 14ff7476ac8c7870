// The audit log: one JSON record per decision (pino), carrying the verdict report.
//
// Records are written, and decisions counted, after the answer has gone out: building and
// serialising a record with its report took about a third of the gate's time per
// CreateContainer (bench/, create-container), and containerd waits for that answer while the
// node's creates queue behind it. Both run at the next turn of the event loop, in order, and
// flush() does whatever is pending (the agent calls it when it stops and on exit).
import type { Logger } from "pino";
import type { Decision, DecisionSink } from "../decision/decision.js";
import type { AgentMetrics } from "./metrics.js";

/** Logs each decision once and counts it; the only place decisions leave the agent. */
export class AuditLog implements DecisionSink {
  private pending: Decision[] = [];
  private scheduled: NodeJS.Immediate | undefined;

  constructor(
    private readonly log: Logger,
    private readonly metrics?: AgentMetrics,
  ) {}

  /** Counts and writes every decision not yet written. */
  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const batch = this.pending;
    this.pending = [];
    for (const d of batch) this.write(d);
  }

  record(d: Decision): void {
    this.pending.push(d);
    this.scheduled ??= setImmediate(() => this.flush());
  }

  private write(d: Decision): void {
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
    const warn = !d.allowed || d.kind === "audit" || d.kind === "break-glass" || d.kind === "failed";
    if (warn) this.log.warn(rec, d.message);
    else this.log.info(rec, d.message);
  }
}
