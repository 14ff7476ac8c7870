import { describe, expect, it } from "vitest";
import { ExemptImages } from "../../src/decision/exempt.js";
import { Gate, IMAGE_NAME_ANNOTATION } from "../../src/agent/gate.js";
import { AgentMetrics } from "../../src/agent/metrics.js";
import { runSyncAudit } from "../../src/agent/sync-audit.js";
import { FakeEngine, FakeSelector, MemorySink, policy, verdict } from "./fakes.js";

const SIGNED = `sha256:${"5".repeat(64)}`;
const UNSIGNED = `sha256:${"6".repeat(64)}`;

function setup(evictOnSync: boolean, createdInGap?: (id: string) => boolean) {
  const strict = policy("strict");
  const watch = policy("watch", { mode: "Audit" });
  const selector = new FakeSelector([strict, watch], strict);
  selector.byNs.set("audit-ns", { kind: "policy", namespace: "audit-ns", policy: watch });
  const sink = new MemorySink();
  const gate = new Gate({
    selector,
    engine: new FakeEngine((s, p) => verdict(p, s, { allowed: s.digest === SIGNED })),
    resolver: {
      resolve: async (name) => ({ reference: name, digest: name.includes("signed") ? SIGNED : UNSIGNED }),
    },
    exemptImages: new ExemptImages([]),
    exemptNamespaces: [],
    budgetFraction: 0.5,
    requestTimeoutMs: () => 2000,
    sink,
  });
  const evicted: Array<{ containerId: string; reason: string }> = [];
  const warnings: string[] = [];
  const metrics = new AgentMetrics();
  const log = { info() {}, warn: (_o: object, m?: string) => warnings.push(m ?? ""), error() {} };
  const run = () =>
    runSyncAudit(
      [
        { id: "p1", name: "pod-b", namespace: "team-b" },
        { id: "p2", name: "pod-a", namespace: "audit-ns" },
      ],
      [
        {
          id: "c1",
          podSandboxId: "p1",
          name: "ok",
          state: 3,
          annotations: { [IMAGE_NAME_ANNOTATION]: "r/signed:v1" },
        },
        {
          id: "c2",
          podSandboxId: "p1",
          name: "bad",
          state: 3,
          annotations: { [IMAGE_NAME_ANNOTATION]: "r/app:v1" },
        },
        {
          id: "c3",
          podSandboxId: "p2",
          name: "watched",
          state: 3,
          annotations: { [IMAGE_NAME_ANNOTATION]: "r/app:v1" },
        },
        {
          id: "c4",
          podSandboxId: "p1",
          name: "gone",
          state: 4,
          annotations: { [IMAGE_NAME_ANNOTATION]: "r/app:v1" },
        },
      ],
      {
        evaluate: (i) => gate.evaluate(i),
        evictOnSync,
        ...(createdInGap ? { createdInGap } : {}),
        evict: async (ev) => void evicted.push(...ev),
        metrics,
        log: log as never,
      },
    );
  return { run, sink, evicted, warnings, metrics };
}

describe("Synchronize audit", () => {
  it("reports non-compliant running containers (enforced and audit-only), skips stopped ones", async () => {
    const t = setup(false);
    const s = await t.run();
    expect(s.containers).toBe(3);
    expect(s.nonCompliant.map((x) => x.id).sort()).toEqual(["c2", "c3"]);
    expect(s.nonCompliant.find((x) => x.id === "c2")!.reason).toContain("tollgate: denied r/app:v1");
    expect(t.sink.decisions.every((d) => d.event === "sync")).toBe(true);
    expect(t.warnings.filter((w) => w.startsWith("non-compliant running container"))).toHaveLength(2);
    expect(t.evicted).toHaveLength(0);
    expect((await t.metrics.nonCompliant.get()).values[0]!.value).toBe(2);
  });

  it("with evict-on-sync, requests eviction only for enforced rejections", async () => {
    const t = setup(true);
    const s = await t.run();
    expect(t.evicted.map((e) => e.containerId)).toEqual(["c2"]);
    expect(s.evictionsRequested).toBe(1);
  });

  it("with evict-on-sync, a container gated earlier (not created in the gap) is reported, never evicted", async () => {
    const t = setup(true, () => false);
    const s = await t.run();
    expect(t.evicted).toEqual([]);
    expect(s.evictionsRequested).toBe(0);
    expect(s.nonCompliant.map((x) => x.id).sort()).toEqual(["c2", "c3"]);
  });
});
