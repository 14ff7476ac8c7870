import { describe, expect, it } from "vitest";
import { ExemptImages } from "../../src/decision/exempt.js";
import type { PolicyRef } from "../../src/decision/ports.js";
import { PullDecider } from "../../src/decision/pull.js";
import { FakeEngine, FakeSelector, MemorySink, policy, verdict } from "../agent/fakes.js";

const D = `sha256:${"c".repeat(64)}`;

function setup(
  mode: "default-policy" | "any-policy-in-use",
  inUse: PolicyRef[],
  def: PolicyRef | undefined,
  exempt: string[] = [],
) {
  const engine = new FakeEngine((s, p) => verdict(p, s, { allowed: p.name === "lax" }));
  const sink = new MemorySink();
  const pull = new PullDecider({
    selector: new FakeSelector(inUse, def),
    engine,
    exemptImages: new ExemptImages(exempt),
    mode,
    timeoutMs: 300,
    failurePolicy: "Closed",
    sink,
  });
  return { pull, engine, sink };
}

describe("pull decision", () => {
  it("default-policy: the default policy decides; all policies in use are pre-warmed", async () => {
    const strict = policy("strict");
    const lax = policy("lax");
    const t = setup("default-policy", [strict, lax], strict);
    const d = await t.pull.decide({ name: "127.0.0.1:5000/app:v1", digest: D });
    expect(d).toMatchObject({ allowed: false, kind: "rejected", policy: { name: "strict" }, event: "pull" });
    expect(d.message).toMatch(/^tollgate: denied 127\.0\.0\.1:5000\/app:v1 \(sha256:c+\) by policy "strict"/);
    expect(t.engine.calls.map((c) => c.policy).sort()).toEqual(["lax", "strict"]);
    expect(t.sink.decisions).toHaveLength(1);
  });

  it("any-policy-in-use: allowed when one policy allows", async () => {
    const t = setup("any-policy-in-use", [policy("strict"), policy("lax")], policy("strict"));
    const d = await t.pull.decide({ name: "127.0.0.1:5000/app:v1", digest: D });
    expect(d).toMatchObject({ allowed: true, policy: { name: "lax" } });
  });

  it("any-policy-in-use: the denial text names no tenant's policy; the audit record keeps each reason", async () => {
    const t = setup(
      "any-policy-in-use",
      [policy("team-a-strict"), policy("team-b-stricter")],
      policy("team-a-strict"),
    );
    const d = await t.pull.decide({ name: "127.0.0.1:5000/app:v1", digest: D });
    expect(d.allowed).toBe(false);
    expect(d.message).toMatch(/no policy in use on this node allows it \(2 policies checked/);
    for (const text of [d.message, d.reason]) expect(text).not.toMatch(/team-a|team-b/);
    expect(d.policy).toBeUndefined();
    expect(d.policies?.map((p) => p.name)).toEqual(["team-a-strict", "team-b-stricter"]);
    expect(d.policies?.every((p) => p.reason.length > 0)).toBe(true);
  });

  it("exempt images pass without verification", async () => {
    const t = setup("default-policy", [policy("strict")], policy("strict"), ["127.0.0.1:5000/pause:3.10"]);
    const d = await t.pull.decide({ name: "127.0.0.1:5000/pause:3.10", digest: D });
    expect(d).toMatchObject({ allowed: true, kind: "exempt" });
    expect(t.engine.calls).toHaveLength(0);
  });

  it("no default policy: the configured failure policy (Closed) applies", async () => {
    const t = setup("default-policy", [], undefined);
    const d = await t.pull.decide({ name: "127.0.0.1:5000/app:v1", digest: D });
    expect(d).toMatchObject({ allowed: false, kind: "failed" });
  });

  it("a verification that does not finish in time counts with its failure policy", async () => {
    const closed = policy("strict");
    const open = policy("open", { failurePolicy: "Open" });
    const t = setup("any-policy-in-use", [closed], closed);
    t.engine.rule = () => new Promise(() => {});
    expect(await t.pull.decide({ name: "r/a:v1", digest: D })).toMatchObject({
      allowed: false,
      kind: "failed",
    });
    const t2 = setup("any-policy-in-use", [closed, open], closed);
    t2.engine.rule = () => new Promise(() => {});
    expect(await t2.pull.decide({ name: "r/a:v1", digest: D })).toMatchObject({
      allowed: true,
      kind: "failed",
    });
  });

  it("audit-mode default policy allows the pull", async () => {
    const audit = policy("watch", { mode: "Audit" });
    const t = setup("default-policy", [audit], audit);
    expect(await t.pull.decide({ name: "r/a:v1", digest: D })).toMatchObject({
      allowed: true,
      kind: "audit",
    });
  });
});

describe("pull durations", () => {
  it("a wall-clock step during a pull decision neither enters its duration nor times it out", async () => {
    let wall = Date.parse("2026-01-01T00:00:00Z");
    const strict = policy("strict");
    const engine = new FakeEngine((s, p) => {
      wall += 60_000; // the clock steps a minute forward while the verification runs
      return verdict(p, s, { allowed: true });
    });
    const sink = new MemorySink();
    const pull = new PullDecider({
      selector: new FakeSelector([strict], strict),
      engine,
      exemptImages: new ExemptImages([]),
      mode: "default-policy",
      timeoutMs: 300,
      failurePolicy: "Closed",
      sink,
      now: () => wall,
    });
    const d = await pull.decide({ name: "127.0.0.1:5000/app:v1", digest: D });
    // Neither the duration nor the answer-by time follows the step: no false timeout.
    expect(d.allowed).toBe(true);
    expect(d.durationMs).toBeGreaterThanOrEqual(0);
    expect(d.durationMs).toBeLessThan(60_000);
    expect(sink.decisions[0]?.durationMs).toBe(d.durationMs);
  });
});
