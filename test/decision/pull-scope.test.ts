// Pull-time rule set (docs/pull-semantics.md): a pull is admitted when some namespace on
// the node could run the image — exempt images, the exempt namespaces' images, a policy in
// use, a namespace under break-glass — and refused otherwise.
import { describe, expect, it } from "vitest";
import { ExemptImages } from "../../src/decision/exempt.js";
import type { PolicyRef } from "../../src/decision/ports.js";
import { PullDecider } from "../../src/decision/pull.js";
import { type ActiveBreakGlass, PullScope } from "../../src/decision/pull-scope.js";
import { FakeEngine, FakeSelector, MemorySink, policy, verdict } from "../agent/fakes.js";

const D = `sha256:${"d".repeat(64)}`;
const NOW = Date.parse("2026-01-01T00:00:00Z");

function setup(o: {
  mode?: "default-policy" | "any-policy-in-use";
  inUse?: PolicyRef[];
  exemptNamespaces?: string[];
  exemptNamespaceImages?: string[];
  breakGlass?: ActiveBreakGlass[];
}) {
  const engine = new FakeEngine((s, p) => verdict(p, s, { allowed: s.reference.includes("signed") }));
  const sink = new MemorySink();
  const inUse = o.inUse ?? [policy("strict")];
  const pull = new PullDecider({
    selector: new FakeSelector(inUse, inUse[0]),
    engine,
    exemptImages: new ExemptImages([]),
    mode: o.mode ?? "any-policy-in-use",
    timeoutMs: 300,
    failurePolicy: "Closed",
    sink,
    now: () => NOW,
    scope: new PullScope({
      exemptNamespaces: o.exemptNamespaces ?? [],
      exemptNamespaceImages: o.exemptNamespaceImages ?? [],
      breakGlass: () => o.breakGlass ?? [],
    }),
  });
  return { pull, engine, sink };
}

describe("pull scope", () => {
  it("an exempt namespace's image pulls without verification; other images still need a policy", async () => {
    const t = setup({ exemptNamespaces: ["kube-system"], exemptNamespaceImages: ["registry.k8s.io/**"] });
    const d = await t.pull.decide({ name: "registry.k8s.io/coredns/coredns:v1.11.3", digest: D });
    expect(d).toMatchObject({
      allowed: true,
      kind: "exempt",
      exemptBy: "namespace-image:registry.k8s.io/**",
    });
    expect(d.message).toContain("kube-system");
    expect(t.engine.calls).toHaveLength(0);
    const tenant = await t.pull.decide({ name: "registry.example/tenant/app:v1", digest: D });
    expect(tenant).toMatchObject({ allowed: false, kind: "rejected" });
    // A look-alike host is not the pattern's registry.
    const lookalike = await t.pull.decide({ name: "registry.k8s.io.evil.example/kube-proxy:v1", digest: D });
    expect(lookalike.allowed).toBe(false);
  });

  it("exemptNamespaceImages admit nothing when no namespace is exempt", async () => {
    const t = setup({ exemptNamespaces: [], exemptNamespaceImages: ["registry.k8s.io/**"] });
    const d = await t.pull.decide({ name: "registry.k8s.io/kube-proxy:v1.31.0", digest: D });
    expect(d.allowed).toBe(false);
  });

  it("break-glass admits a would-be denial, naming the namespace and its expiry; a signed image is judged normally", async () => {
    const until = NOW + 3600_000;
    const t = setup({ breakGlass: [{ namespace: "payments", until, reason: "INC-42 hotfix" }] });
    const d = await t.pull.decide({ name: "registry.example/payments/hotfix:v2", digest: D });
    expect(d).toMatchObject({
      allowed: true,
      kind: "break-glass",
      breakGlassUntil: new Date(until).toISOString(),
    });
    expect(d.message).toContain('"payments"');
    expect(d.message).toContain("allowed (break-glass, would deny)");
    expect(d.notes?.join(" ")).toContain("INC-42 hotfix");
    expect(t.sink.decisions).toEqual([d]);
    const signed = await t.pull.decide({
      name: "registry.example/app-signed:v1",
      digest: `sha256:${"e".repeat(64)}`,
    });
    expect(signed.allowed).toBe(true);
    expect(signed.kind).not.toBe("break-glass");
  });

  it("an expired break-glass admits nothing", async () => {
    const t = setup({ breakGlass: [{ namespace: "payments", until: NOW - 1 }] });
    const d = await t.pull.decide({ name: "registry.example/payments/hotfix:v2", digest: D });
    expect(d).toMatchObject({ allowed: false });
  });

  it("under default-policy mode the same rules hold", async () => {
    const t = setup({
      mode: "default-policy",
      exemptNamespaces: ["kube-system"],
      exemptNamespaceImages: ["registry.k8s.io/kube-proxy"],
      breakGlass: [{ namespace: "ops", until: NOW + 1000 }],
    });
    expect((await t.pull.decide({ name: "registry.k8s.io/kube-proxy:v1.31.0", digest: D })).kind).toBe(
      "exempt",
    );
    expect((await t.pull.decide({ name: "registry.k8s.io/etcd:3.5", digest: D })).kind).toBe("break-glass");
  });
});
