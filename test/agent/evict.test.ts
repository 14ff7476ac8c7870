// evictOnSync's stopper (src/agent/evict.ts): stops enforced rejections through the given
// CRI call with the grace period, audits each, never touches exempt or system namespaces.
import { describe, expect, it } from "vitest";
import { Evictor } from "../../src/agent/evict.js";
import { AgentMetrics } from "../../src/agent/metrics.js";

function logger() {
  const lines: Array<{ level: string; obj: Record<string, unknown>; msg: string }> = [];
  const at = (level: string) => (obj: object, msg?: string) =>
    lines.push({ level, obj: obj as Record<string, unknown>, msg: msg ?? "" });
  return { lines, log: { info: at("info"), warn: at("warn"), error: at("error") } };
}

describe("evictOnSync through CRI", () => {
  it("stops each non-exempt container with the grace period and audits why; skips exempt and system namespaces", async () => {
    const calls: Array<[string, number]> = [];
    const { lines, log } = logger();
    const metrics = new AgentMetrics();
    const ev = new Evictor({
      stop: async (id, grace) => {
        calls.push([id, grace]);
      },
      gracePeriodSeconds: 7,
      exemptNamespaces: ["infra"],
      log,
      metrics,
    });
    const r = await ev.evict([
      {
        containerId: "c1",
        reason: 'tollgate: denied x (sha256:a) in namespace "team-b"',
        namespace: "team-b",
        name: "app",
        pod: "p1",
      },
      { containerId: "c2", reason: "r", namespace: "infra" },
      { containerId: "c3", reason: "r", namespace: "kube-system" },
      { containerId: "c4", reason: "r" },
    ]);
    expect(r).toEqual({ stopped: 1, skipped: 3, failed: 0 });
    expect(calls).toEqual([["c1", 7]]);
    const stopped = lines.find((l) => l.obj.result === "stopped")!;
    expect(stopped.obj).toMatchObject({
      audit: true,
      event: "evict",
      namespace: "team-b",
      gracePeriodSeconds: 7,
    });
    expect(stopped.msg).toContain('stopped container app in namespace "team-b"');
    expect(stopped.msg).toContain("tollgate: denied x");
    expect(lines.filter((l) => l.obj.result === "skipped")).toHaveLength(3);
    expect(await metrics.registry.metrics()).toMatch(/^tollgate_evictions_total\{result="stopped"\} 1$/m);
  });

  it("a failing stop is audited as failed and does not stop the others", async () => {
    const { lines, log } = logger();
    const ev = new Evictor({
      stop: async (id) => {
        if (id === "bad") throw new Error("container not found");
      },
      gracePeriodSeconds: 0,
      exemptNamespaces: [],
      log,
    });
    const r = await ev.evict([
      { containerId: "bad", reason: "r", namespace: "a" },
      { containerId: "good", reason: "r", namespace: "a" },
    ]);
    expect(r).toEqual({ stopped: 1, skipped: 0, failed: 1 });
    expect(lines.find((l) => l.obj.result === "failed")!.obj.err).toContain("container not found");
  });
});
