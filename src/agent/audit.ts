// The audit log: one JSON record per decision (pino), carrying the verdict report.
import type { Logger } from "pino";
import type { Decision, DecisionSink } from "../decision/decision.js";
import type { AgentMetrics } from "./metrics.js";


/** Logs each decision once and counts it; the only place decisions leave the agent. */
export class AuditLog implements DecisionSink {
  constructor(
    private readonly log: Logger,
    private readonly metrics?: AgentMetrics,
  ) {}

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
    if (!d.allowed || d.kind === "audit" || d.kind === "break-glass" || d.kind === "failed")
      this.log.warn(rec, d.message);
    else this.log.info(rec, d.message);
  }
}
