// The audit log writes and counts each decision once, after the current loop turn (the
// answer to containerd goes out first), in order; flush() does what is pending at once.
import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { AuditLog } from "../../src/agent/audit.js";
import { AgentMetrics } from "../../src/agent/metrics.js";
import type { Decision } from "../../src/decision/decision.js";

function decision(i: number, allowed: boolean): Decision {
  return {
    event: "create",
    allowed,
    kind: allowed ? "verified" : "rejected",
    image: `registry.example/app:${i}`,
    namespace: "team-a",
    reason: allowed ? "verified" : "unsigned",
    source: "cache",
    durationMs: 0.25,
    message: `decision ${i}`,
  } as Decision;
}

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const out = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, log: pino({ level: "info" }, out) };
}

describe("AuditLog", () => {
  it("writes records after the current loop turn, once each and in order, at info or warn", async () => {
    const { lines, log } = capture();
    const audit = new AuditLog(log);
    audit.record(decision(1, true));
    audit.record(decision(2, false));
    expect(lines).toHaveLength(0); // the caller answers first
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => [l.msg, l.level, l.result])).toEqual([
      ["decision 1", 30, "allow"],
      ["decision 2", 40, "deny"],
    ]);
    await new Promise((r) => setTimeout(r, 10));
    expect(lines).toHaveLength(2);
  });

  it("flush() writes what is pending at once and nothing twice", async () => {
    const { lines, log } = capture();
    const audit = new AuditLog(log);
    audit.record(decision(3, true));
    audit.flush();
    await new Promise((r) => setImmediate(r)); // the stream's write callback
    expect(lines.map((l) => l.msg)).toEqual(["decision 3"]);
    await new Promise((r) => setTimeout(r, 10));
    audit.flush();
    expect(lines).toHaveLength(1);
  });

  it("counts each decision once, with its record", async () => {
    const { log } = capture();
    const metrics = new AgentMetrics();
    const audit = new AuditLog(log, metrics);
    const allowed = /^tollgate_decisions_total\{event="create",result="allow"[^}]*\} (\d+)$/m;
    audit.record(decision(4, true));
    audit.record(decision(5, true));
    await new Promise((r) => setImmediate(r));
    expect(allowed.exec(await metrics.registry.metrics())?.[1]).toBe("2");
    audit.flush();
    expect(allowed.exec(await metrics.registry.metrics())?.[1]).toBe("2");
  });
});
