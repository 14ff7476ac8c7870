import { afterEach, describe, expect, it, vi } from "vitest";
import { ExemptImages } from "../../src/decision/exempt.js";
import type { RootfsBinder } from "../../src/agent/binding.js";
import { Gate, IMAGE_NAME_ANNOTATION } from "../../src/agent/gate.js";
import type { ImageResolver, PolicyRef, Selection } from "../../src/decision/ports.js";
import { deferred, FakeEngine, FakeSelector, MemorySink, policy, verdict } from "./fakes.js";

const DIGEST = `sha256:${"a".repeat(64)}`;
const SIGNED = `sha256:${"b".repeat(64)}`;

function setup(
  opts: { def?: PolicyRef; exemptNs?: string[]; exemptImages?: string[]; timeoutMs?: number } = {},
) {
  const strict = opts.def ?? policy("strict");
  const selector = new FakeSelector([strict], strict);
  const engine = new FakeEngine((s, p) => verdict(p, s, { allowed: s.digest === SIGNED }));
  const resolved: string[] = [];
  const forContainer: Array<string | undefined> = [];
  const resolver: ImageResolver = {
    async resolve(name, o) {
      resolved.push(name);
      forContainer.push(o.forContainer);
      if (name.includes("missing")) throw new Error(`image "${name}" not found`);
      return { reference: name, digest: name.includes("signed") ? SIGNED : DIGEST };
    },
  };
  const sink = new MemorySink();
  const gate = new Gate({
    selector,
    engine,
    resolver,
    exemptImages: new ExemptImages(opts.exemptImages ?? []),
    exemptNamespaces: opts.exemptNs ?? [],
    budgetFraction: 0.5,
    requestTimeoutMs: () => opts.timeoutMs ?? 2000,
    sink,
  });
  const create = (ns: string, image: string, ctx: { deadline?: number } = {}) =>
    gate.createContainer(
      { id: "pod1", name: "p", namespace: ns },
      { id: "c1", name: "app", annotations: image ? { [IMAGE_NAME_ANNOTATION]: image } : {} },
      ctx,
    );
  return { gate, selector, engine, resolver, resolved, forContainer, sink, create, strict };
}

describe("create-time gate", () => {
  it("allows a verified image and answers the retry from the cache", async () => {
    const t = setup();
    const d1 = await t.create("team-a", "127.0.0.1:5000/signed:v1");
    expect(d1).toMatchObject({
      allowed: true,
      kind: "verified",
      source: "verify",
      digest: SIGNED,
      namespace: "team-a",
    });
    const d2 = await t.create("team-a", "127.0.0.1:5000/signed:v1");
    expect(d2).toMatchObject({ allowed: true, source: "cache" });
    expect(t.engine.calls).toHaveLength(1);
    expect(t.sink.decisions).toHaveLength(2);
  });

  it("names the container being created to the resolver, and no container for other lookups", async () => {
    const t = setup();
    await t.create("team-a", "127.0.0.1:5000/signed:v1");
    await t.gate.evaluate({ event: "pull", namespace: "team-a", imageName: "127.0.0.1:5000/signed:v1" });
    await t.gate.evaluate({
      event: "sync",
      namespace: "team-a",
      imageName: "127.0.0.1:5000/signed:v1",
      container: { id: "c2", name: "app", pod: "p" },
    });
    expect(t.forContainer).toEqual(["c1", undefined, undefined]);
  });

  it("denies with one line naming image, digest, namespace, policy, revision and reason", async () => {
    const t = setup();
    const d = await t.create("team-b", "127.0.0.1:5000/app:v1");
    expect(d.allowed).toBe(false);
    expect(d.kind).toBe("rejected");
    expect(d.message).toBe(
      `tollgate: denied 127.0.0.1:5000/app:v1 (${DIGEST}) in namespace "team-b" by policy "strict" (rev rev-strict-0): no cosign signature found`,
    );
    expect(d.message).not.toContain("\n");
  });

  it("audit mode allows and records the would-be denial", async () => {
    const t = setup({ def: policy("watch", { mode: "Audit" }) });
    const d = await t.create("team-c", "127.0.0.1:5000/app:v1");
    expect(d).toMatchObject({ allowed: true, kind: "audit", mode: "Audit" });
    expect(d.message).toContain("audit mode, would deny");
    expect(t.sink.decisions).toEqual([d]);
  });

  it("break-glass allows while valid and denies after expiry", async () => {
    const t = setup();
    t.selector.byNs.set("ops", {
      kind: "policy",
      namespace: "ops",
      policy: t.strict,
      breakGlass: { until: new Date(Date.now() + 60_000) },
    });
    const ok = await t.create("ops", "127.0.0.1:5000/app:v1");
    expect(ok).toMatchObject({ allowed: true, kind: "break-glass" });
    expect(ok.breakGlassUntil).toBeDefined();
    t.selector.byNs.set("ops", {
      kind: "policy",
      namespace: "ops",
      policy: t.strict,
      breakGlass: { until: new Date(Date.now() - 1000) },
    });
    const no = await t.create("ops", "127.0.0.1:5000/app:v1");
    expect(no).toMatchObject({ allowed: false, kind: "rejected" });
  });

  it("exempt namespaces (configuration or source) allow without resolving or verifying", async () => {
    const t = setup({ exemptNs: ["kube-system"] });
    t.selector.byNs.set("infra", { kind: "exempt", namespace: "infra", reason: "namespace infra is exempt" });
    expect(await t.create("kube-system", "127.0.0.1:5000/app:v1")).toMatchObject({
      allowed: true,
      kind: "exempt",
    });
    expect(await t.create("infra", "127.0.0.1:5000/app:v1")).toMatchObject({ allowed: true, kind: "exempt" });
    expect(t.engine.calls).toHaveLength(0);
    expect(t.resolved).toHaveLength(0);
  });

  it("exempt image patterns match the resolved digest", async () => {
    const t = setup({ exemptImages: [`127.0.0.1:5000/pause@${DIGEST}`, "127.0.0.1:5000/tools/*:v*"] });
    expect(await t.create("team-b", "127.0.0.1:5000/pause:3.10")).toMatchObject({
      allowed: true,
      kind: "exempt",
    });
    expect(await t.create("team-b", "127.0.0.1:5000/tools/x:v2")).toMatchObject({
      allowed: true,
      kind: "exempt",
    });
    expect(await t.create("team-b", "127.0.0.1:5000/tools/x:latest")).toMatchObject({ allowed: false });
    expect(t.engine.calls).toHaveLength(1);
  });

  it("answers within the budget when verification hangs: Closed denies, the retry hits the cache", async () => {
    const t = setup({ timeoutMs: 200 });
    const hang = deferred<void>();
    t.engine.rule = async (s, p) => {
      await hang.promise;
      return verdict(p, s, { allowed: false });
    };
    const d = await t.create("team-b", "127.0.0.1:5000/app:v1");
    expect(d).toMatchObject({ allowed: false, kind: "failed", source: "budget" });
    expect(d.reason).toContain("create-time budget");
    // A second attempt joins the same verification (single flight) rather than starting another.
    const d2 = await t.create("team-b", "127.0.0.1:5000/app:v1");
    expect(d2.source).toBe("budget");
    expect(t.engine.calls).toHaveLength(1);
    hang.resolve();
    await new Promise((r) => setImmediate(r));
    const d3 = await t.create("team-b", "127.0.0.1:5000/app:v1");
    expect(d3).toMatchObject({ allowed: false, kind: "rejected", source: "cache" });
  });

  it("failure policy Open allows (and says so) when the budget runs out", async () => {
    const t = setup({ def: policy("lenient", { failurePolicy: "Open" }), timeoutMs: 100 });
    t.engine.rule = () => new Promise(() => {});
    const d = await t.create("team-b", "127.0.0.1:5000/app:v1");
    expect(d).toMatchObject({ allowed: true, kind: "failed", source: "budget" });
    expect(d.message).toContain("failure policy Open");
  });

  it("an already-spent deadline leaves no budget: cache or failure policy only", async () => {
    const t = setup();
    t.engine.rule = () => new Promise(() => {});
    const d = await t.create("team-b", "127.0.0.1:5000/app:v1", { deadline: Date.now() + 10 });
    expect(d).toMatchObject({ allowed: false, source: "budget" });
  });

  it("failures to resolve, a missing annotation, a throwing engine and a source error all fail closed", async () => {
    const t = setup();
    // Not knowing the content is a denial, not a verification failure.
    expect(await t.create("team-b", "127.0.0.1:5000/missing:v1")).toMatchObject({
      allowed: false,
      kind: "rejected",
    });
    expect(await t.create("team-b", "")).toMatchObject({ allowed: false, kind: "rejected" });
    t.engine.rule = () => {
      throw new Error("registry exploded");
    };
    const d = await t.create("team-b", "127.0.0.1:5000/other:v1");
    expect(d).toMatchObject({ allowed: false, kind: "failed" });
    expect(d.reason).toContain("registry exploded");
    t.selector.byNs.set("broken", {
      kind: "error",
      namespace: "broken",
      message: 'policy "nope" not found',
      failurePolicy: "Closed",
    });
    const e = await t.create("broken", "127.0.0.1:5000/signed:v1");
    expect(e).toMatchObject({ allowed: false, kind: "failed" });
    expect(e.message).toContain('policy "nope" not found');
    expect(t.sink.decisions).toHaveLength(4);
  });

  it("prefers a digest carried by the request over a lookup", async () => {
    const t = setup();
    const d = await t.gate.createContainer({ namespace: "team-a" }, {
      id: "c",
      name: "n",
      annotations: { [IMAGE_NAME_ANNOTATION]: "127.0.0.1:5000/app:v1" },
      imageDigest: SIGNED,
    } as never);
    expect(d).toMatchObject({ allowed: true, digest: SIGNED });
    expect(t.resolved).toHaveLength(0);
  });

  it("cross-tenant: the same digest is judged by each namespace's policy", async () => {
    const t = setup();
    const lax = policy("lax", { mode: "Enforce" });
    t.engine.rule = (s, p) => verdict(p, s, { allowed: p.name === "lax" });
    t.selector.byNs.set("team-a", { kind: "policy", namespace: "team-a", policy: lax });
    expect(await t.create("team-a", "127.0.0.1:5000/app:v1")).toMatchObject({ allowed: true });
    expect(await t.create("team-b", "127.0.0.1:5000/app:v1")).toMatchObject({ allowed: false });
    expect(await t.create("team-a", "127.0.0.1:5000/app:v1")).toMatchObject({
      allowed: true,
      source: "cache",
    });
  });
});

describe("durations", () => {
  it("a wall-clock step during a decision does not enter its recorded duration", async () => {
    // containerd measures its deadline on a monotonic clock; the audit's durationMs must too,
    // or an NTP step / VM resume reads as a missed deadline that never happened.
    let wall = Date.parse("2026-01-01T00:00:00Z");
    const strict = policy("strict");
    const sink = new MemorySink();
    const gate = new Gate({
      selector: new FakeSelector([strict], strict),
      engine: new FakeEngine((s, p) => verdict(p, s, { allowed: true })),
      resolver: {
        async resolve(name) {
          wall += 60_000; // the clock steps a minute forward mid-decision
          return { reference: name, digest: SIGNED };
        },
      },
      exemptImages: new ExemptImages([]),
      exemptNamespaces: [],
      budgetFraction: 0.5,
      requestTimeoutMs: () => 2000,
      sink,
      now: () => wall,
    });
    const d = await gate.evaluate({ event: "create", namespace: "team-a", imageName: "r.example/app:v1" });
    expect(d.allowed).toBe(true);
    expect(d.durationMs).toBeGreaterThanOrEqual(0);
    expect(d.durationMs).toBeLessThan(60_000);
    expect(sink.decisions[0]?.durationMs).toBe(d.durationMs);
  });
});

describe("create-time budget on the monotonic clock", () => {
  // The wall clock (Date.now) can step backwards mid-create (NTP, VM resume). containerd's
  // timeout does not move with it, so neither may the gate's budget nor the deadlines the gate
  // hands to containerd's gRPC calls.
  const realNow = Date.now.bind(Date);
  let offset = 0;
  afterEach(() => {
    vi.restoreAllMocks();
    offset = 0;
  });

  function stepping(rule: ConstructorParameters<typeof FakeEngine>[0]) {
    vi.spyOn(Date, "now").mockImplementation(() => realNow() + offset);
    const strict = policy("strict");
    // Selecting the policy is the first thing a create does: the clock steps an hour back there.
    const selector = new (class extends FakeSelector {
      override select(namespace: string): Selection {
        offset = -3_600_000;
        return super.select(namespace);
      }
    })([strict], strict);
    const given: Array<{ call: string; deadline: number; wallAtCall: number }> = [];
    const resolver: ImageResolver = {
      async resolve(name, o) {
        given.push({ call: "resolve", deadline: o.deadline, wallAtCall: Date.now() });
        return { reference: name, digest: SIGNED };
      },
    };
    const binder: RootfsBinder = {
      async bind(_id, _digest, deadline) {
        given.push({ call: "bind", deadline, wallAtCall: Date.now() });
        return { kind: "match", snapshotter: "overlayfs", parent: `sha256:${"1".repeat(64)}` };
      },
    };
    const sink = new MemorySink();
    const gate = new Gate({
      selector,
      engine: new FakeEngine(rule),
      resolver,
      exemptImages: new ExemptImages([]),
      exemptNamespaces: [],
      budgetFraction: 0.5,
      requestTimeoutMs: () => 400, // a 200 ms budget
      sink,
      now: () => Date.now(),
      binder,
    });
    const create = () =>
      gate.createContainer(
        { id: "pod1", name: "p", namespace: "team-a" },
        { id: "c1", name: "app", annotations: { [IMAGE_NAME_ANNOTATION]: "127.0.0.1:5000/app:v1" } },
        { deadline: Date.now() + 400 }, // as the ttrpc server hands it on: epoch ms
      );
    return { create, given };
  }

  it("a backward wall-clock step mid-create does not lengthen the budget", async () => {
    // The verification outlasts the 200 ms budget by far; an hour-long budget would wait for it.
    const t = stepping(
      (s, p) => new Promise((resolve) => setTimeout(() => resolve(verdict(p, s, { allowed: true })), 3000)),
    );
    const d = await t.create();
    expect(d).toMatchObject({ allowed: false, kind: "failed", source: "budget" });
  });

  it("the deadlines handed to containerd's calls are the budget's remainder on the stepped wall clock", async () => {
    const t = stepping((s, p) => verdict(p, s, { allowed: true }));
    const d = await t.create();
    expect(d).toMatchObject({ allowed: true, source: "verify" });
    expect(t.given.map((g) => g.call)).toEqual(["resolve", "bind"]);
    for (const g of t.given) {
      // at most the 200 ms budget (the binding gets at least 250 ms), never the hour the clock went back
      expect(g.deadline - g.wallAtCall).toBeLessThanOrEqual(260);
      expect(g.deadline - g.wallAtCall).toBeGreaterThan(-1000);
    }
  });
});

describe("answers known at once", () => {
  function withFastPaths(o: { now?: "throw" | "none"; bindNow?: "match" | "none" }) {
    const strict = policy("strict");
    const calls: string[] = [];
    const resolver: ImageResolver = {
      async resolve(name) {
        calls.push("resolve");
        return { reference: name, digest: SIGNED };
      },
      resolveNow(name, forContainer) {
        calls.push(`resolveNow ${forContainer}`);
        if (o.now === "throw") throw new Error("record targets sha256:x, not the pinned digest");
        return o.now === "none" ? undefined : { reference: name, digest: SIGNED };
      },
    };
    const binder: RootfsBinder = {
      async bind() {
        calls.push("bind");
        return { kind: "mismatch", snapshotter: "overlayfs", parent: "sha256:other", expected: [] };
      },
      bindNow(id, digest) {
        calls.push(`bindNow ${id} ${digest}`);
        return o.bindNow === "match"
          ? { kind: "match", snapshotter: "overlayfs", parent: "sha256:chain" }
          : undefined;
      },
    };
    const gate = new Gate({
      selector: new FakeSelector([strict], strict),
      engine: new FakeEngine((s, p) => verdict(p, s, { allowed: s.digest === SIGNED })),
      resolver,
      exemptImages: new ExemptImages([]),
      exemptNamespaces: [],
      budgetFraction: 0.5,
      requestTimeoutMs: () => 2000,
      sink: new MemorySink(),
      binder,
    });
    const create = () =>
      gate.createContainer(
        { id: "pod1", name: "p", namespace: "team-a" },
        { id: "c1", name: "app", annotations: { [IMAGE_NAME_ANNOTATION]: "127.0.0.1:5000/app:v1" } },
      );
    return { create, calls };
  }

  it("uses the resolver's and binder's immediate answers when they have one", async () => {
    const t = withFastPaths({ bindNow: "match" });
    expect(await t.create()).toMatchObject({ allowed: true, digest: SIGNED });
    expect(t.calls).toEqual(["resolveNow c1", `bindNow c1 ${SIGNED}`]);
  });

  it("falls back to asking when there is none, and the slow answer still denies", async () => {
    const t = withFastPaths({ now: "none" });
    const d = await t.create();
    expect(t.calls).toEqual(["resolveNow c1", "resolve", `bindNow c1 ${SIGNED}`, "bind"]);
    expect(d).toMatchObject({ allowed: false });
    expect(d.reason).toContain("from other content than the image judged");
  });

  it("a malformed record found at once is an unidentified image, denied", async () => {
    const t = withFastPaths({ now: "throw", bindNow: "match" });
    const d = await t.create();
    expect(d.allowed).toBe(false);
    expect(d.reason).toContain("cannot tell which image content containerd would start");
    expect(d.reason).toContain("not the pinned digest");
    expect(t.calls).toEqual(["resolveNow c1"]);
  });
});
