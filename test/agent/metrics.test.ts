import { describe, expect, it } from "vitest";
import type { Decision } from "../../src/decision/decision.js";
import { AgentMetrics } from "../../src/agent/metrics.js";

function decision(over: Partial<Decision> = {}): Decision {
  return {
    event: "create",
    allowed: true,
    kind: "verified",
    message: "",
    reason: "signed",
    image: "registry.test/app:v1",
    namespace: "team-a",
    policy: { name: "default", revision: "r1" },
    mode: "Enforce",
    source: "cache",
    durationMs: 0.1,
    ...over,
  };
}

describe("AgentMetrics", () => {
  it("exposes decisions and cache lookups counted per label set, across scrapes", async () => {
    const m = new AgentMetrics();
    m.recordDecision(decision());
    m.recordDecision(decision());
    m.recordDecision(
      decision({ allowed: false, kind: "rejected", source: "verify", policy: undefined, mode: undefined }),
    );
    m.cacheLookup("hit");
    m.cacheLookup("hit");
    let text = await m.registry.metrics();
    expect(text).toContain(
      'tollgate_decisions_total{event="create",result="allow",kind="verified",mode="Enforce",policy="default",source="cache"} 2',
    );
    expect(text).toContain(
      'tollgate_decisions_total{event="create",result="deny",kind="rejected",mode="",policy="",source="verify"} 1',
    );
    expect(text).toContain('tollgate_verdict_cache_total{result="hit"} 2');
    expect(text).not.toContain('result="miss"');
    // counts keep growing from where the last scrape left them (no double counting)
    m.recordDecision(decision());
    m.cacheLookup("miss");
    text = await m.registry.metrics();
    expect(text).toContain(
      'tollgate_decisions_total{event="create",result="allow",kind="verified",mode="Enforce",policy="default",source="cache"} 3',
    );
    expect(text).toContain('tollgate_verdict_cache_total{result="hit"} 2');
    expect(text).toContain('tollgate_verdict_cache_total{result="miss"} 1');
    // labels that look alike once joined stay apart
    m.recordDecision(decision({ policy: { name: "a\u0000b", revision: "r" } }));
    text = await m.registry.metrics();
    expect(text.match(/tollgate_decisions_total\{/g)).toHaveLength(3);
  });

  it("exposes the image-name cache's lookups by how they were answered, read at each scrape", async () => {
    const m = new AgentMetrics();
    const counts = { hits: 5, orderedHits: 3, misses: 2, bypassed: 1 };
    m.watchImageCache(() => counts);
    let text = await m.registry.metrics();
    expect(text).toContain('tollgate_image_cache_lookups_total{result="hit_at_once"} 3');
    expect(text).toContain('tollgate_image_cache_lookups_total{result="hit"} 2');
    expect(text).toContain('tollgate_image_cache_lookups_total{result="miss"} 2');
    expect(text).toContain('tollgate_image_cache_lookups_total{result="bypassed"} 1');
    counts.hits = 9;
    counts.orderedHits = 7;
    text = await m.registry.metrics();
    expect(text).toContain('tollgate_image_cache_lookups_total{result="hit_at_once"} 7');
    expect(text).toContain('tollgate_image_cache_lookups_total{result="hit"} 2');
  });

  it("exposes rootfs lookups by how the snapshot was found, and nothing before the binder is watched", async () => {
    const m = new AgentMetrics();
    expect(await m.registry.metrics()).not.toMatch(/^tollgate_rootfs_lookups_total\{/m);
    const counts = { fromEvents: 4, statCalls: 1 };
    m.watchBinding(() => counts);
    let text = await m.registry.metrics();
    expect(text).toContain('tollgate_rootfs_lookups_total{via="event"} 4');
    expect(text).toContain('tollgate_rootfs_lookups_total{via="stat"} 1');
    counts.fromEvents = 6;
    text = await m.registry.metrics();
    expect(text).toContain('tollgate_rootfs_lookups_total{via="event"} 6');
    expect(text).toContain('tollgate_rootfs_lookups_total{via="stat"} 1');
  });
});
