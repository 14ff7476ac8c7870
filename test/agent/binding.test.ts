// The create-time gate binds an allowed create to containerd's record of the container's
// rootfs (binding.ts): a mismatch denies under every failure policy; where containerd records
// nothing readable, a name that pointed at several digests in the window needs all to pass.
import { describe, expect, it } from "vitest";
import type { Binding, RootfsBinder } from "../../src/agent/binding.js";
import { TagHistory } from "../../src/agent/binding.js";
import { ExemptImages } from "../../src/decision/exempt.js";
import { Gate, IMAGE_NAME_ANNOTATION } from "../../src/agent/gate.js";
import type { PolicyRef } from "../../src/decision/ports.js";
import { chainId } from "../../src/containerd/rootfs.js";
import { FakeEngine, FakeSelector, MemorySink, policy, verdict } from "./fakes.js";

const SIGNED = `sha256:${"b".repeat(64)}`;
const SIGNED2 = `sha256:${"c".repeat(64)}`;
const UNSIGNED = `sha256:${"a".repeat(64)}`;
const NAME = "registry.example/team/app:v1";

function setup(o: { binding: Binding | Error; def?: PolicyRef; history?: TagHistory; exempt?: string[] }) {
  const p = o.def ?? policy("strict");
  const engine = new FakeEngine((s, pol) => verdict(pol, s, { allowed: s.digest !== UNSIGNED }));
  const sink = new MemorySink();
  const asked: Array<{ id: string; digest: string }> = [];
  const binder: RootfsBinder = {
    async bind(id, digest) {
      asked.push({ id, digest });
      if (o.binding instanceof Error) throw o.binding;
      return o.binding;
    },
  };
  const gate = new Gate({
    selector: new FakeSelector([p], p),
    engine,
    resolver: { resolve: async (name) => ({ reference: name, digest: SIGNED }) },
    exemptImages: new ExemptImages(o.exempt ?? []),
    exemptNamespaces: ["kube-system"],
    budgetFraction: 0.5,
    requestTimeoutMs: () => 2000,
    sink,
    binder,
    tagHistory: o.history,
  });
  const create = (ns = "team", image = NAME) =>
    gate.createContainer(
      { id: "pod1", name: "p", namespace: ns },
      { id: "ctr-1", name: "app", annotations: { [IMAGE_NAME_ANNOTATION]: image } },
    );
  return { gate, engine, sink, asked, create };
}

const match: Binding = { kind: "match", snapshotter: "overlayfs", parent: "sha256:1" };
const mismatch: Binding = {
  kind: "mismatch",
  snapshotter: "overlayfs",
  parent: `sha256:${"9".repeat(64)}`,
  expected: [`sha256:${"1".repeat(64)}`],
};
const unknown: Binding = { kind: "unknown", reason: "no snapshot ctr-1 in snapshotter(s) overlayfs" };

describe("rootfs binding in the create-time gate", () => {
  it("allowed when containerd's rootfs is the judged image; asks with the container id and judged digest", async () => {
    const t = setup({ binding: match });
    const d = await t.create();
    expect(d).toMatchObject({ allowed: true, kind: "verified", digest: SIGNED });
    expect(t.asked).toEqual([{ id: "ctr-1", digest: SIGNED }]);
    expect(t.sink.decisions).toHaveLength(1);
  });

  for (const fp of ["Closed", "Open"] as const) {
    it(`a different rootfs is denied under failurePolicy ${fp}, naming the snapshot`, async () => {
      const t = setup({ binding: mismatch, def: policy("strict", { failurePolicy: fp }) });
      const d = await t.create();
      expect(d.allowed).toBe(false);
      expect(d.message).toContain(`snapshot parent ${mismatch.parent}`);
      expect(d.message).toContain(`by policy "strict"`);
      expect(t.sink.decisions).toHaveLength(1);
      expect(t.sink.decisions[0]!.allowed).toBe(false);
    });
  }

  it("Audit mode and break-glass still allow a mismatch (as every other would-deny), recorded as such", async () => {
    const t = setup({ binding: mismatch, def: policy("watch", { mode: "Audit" }) });
    expect(await t.create()).toMatchObject({ allowed: true, kind: "audit" });
  });

  it("denied images and exempt namespaces are not bound (nothing to protect)", async () => {
    const t = setup({ binding: mismatch });
    t.engine.rule = (s, p) => verdict(p, s, { allowed: false });
    expect(await t.create()).toMatchObject({ allowed: false, kind: "rejected" });
    expect(await t.create("kube-system")).toMatchObject({ allowed: true, kind: "exempt" });
    expect(t.asked).toHaveLength(0);
  });

  it("an exempt image is bound too", async () => {
    const t = setup({ binding: mismatch, exempt: ["registry.example/team/app:v1"] });
    expect(await t.create()).toMatchObject({ allowed: false });
  });

  it("a binder error counts as 'nothing identifies it': no history → allowed with a note", async () => {
    const t = setup({ binding: new Error("containerd snapshots.Stat: unavailable") });
    const d = await t.create();
    expect(d.allowed).toBe(true);
    expect(d.notes?.join(" ")).toMatch(/rootfs binding unavailable: containerd snapshots\.Stat/);
  });

  it("fallback: the name pointed at an unsigned digest inside the window → denied, even under Open", async () => {
    let now = 1_000_000;
    const history = new TagHistory(
      60_000,
      (n) => n.toLowerCase(),
      () => now,
    );
    history.record(NAME.toUpperCase(), UNSIGNED);
    now += 30_000;
    const t = setup({ binding: unknown, history, def: policy("strict", { failurePolicy: "Open" }) });
    const d = await t.create();
    expect(d.allowed).toBe(false);
    expect(d.reason).toContain("pointed at 2 digests");
    expect(d.reason).toContain(`${UNSIGNED} is not allowed: no cosign signature found`);
  });

  it("fallback: every digest of the name passes → allowed; outside the window → forgotten", async () => {
    let now = 1_000_000;
    const history = new TagHistory(
      60_000,
      (n) => n,
      () => now,
    );
    history.record(NAME, SIGNED2);
    const t = setup({ binding: unknown, history });
    const d = await t.create();
    expect(d.allowed).toBe(true);
    expect(d.notes?.join(" ")).toContain("every digest of the name passes");
    expect(t.engine.calls.map((c) => c.subject.digest).sort()).toEqual([SIGNED, SIGNED2].sort());

    history.record(NAME, UNSIGNED);
    now += 61_000;
    expect(history.within(NAME)).toEqual([]);
    expect((await t.create()).allowed).toBe(true);
  });

  it("TagHistory keeps distinct digests, newest last, bounded", () => {
    const h = new TagHistory(
      60_000,
      (n) => n,
      () => 0,
    );
    for (let i = 0; i < 20; i++) h.record("n", `sha256:${String(i % 10).repeat(64)}`);
    expect(h.within("n")).toHaveLength(8);
    expect(h.within("n").at(-1)).toBe(`sha256:${"9".repeat(64)}`);
    expect(new TagHistory(0).within("n")).toEqual([]);
  });

  it("TagHistory: the same digest again refreshes its time; others still age out by theirs", () => {
    let now = 0;
    const h = new TagHistory(
      60_000,
      (n) => n,
      () => now,
    );
    const a = `sha256:${"a".repeat(64)}`;
    const b = `sha256:${"b".repeat(64)}`;
    h.record("n", a);
    now = 30_000;
    h.record("n", b);
    now = 50_000;
    h.record("n", b);
    expect(h.within("n")).toEqual([a, b]);
    now = 70_000; // a is 70 s old, b was refreshed at 50 s
    expect(h.within("n")).toEqual([b]);
    now = 100_000;
    h.record("n", b);
    now = 150_000;
    expect(h.within("n")).toEqual([b]);
    h.record("n", a); // a moves back: newest last
    expect(h.within("n")).toEqual([b, a]);
  });
});

describe("chainId (OCI image-spec ChainID)", () => {
  it("is the diff_id for one layer and H(chain + ' ' + diff) after", () => {
    const a = `sha256:${"a".repeat(64)}`;
    const b = `sha256:${"b".repeat(64)}`;
    expect(chainId([a])).toBe(a);
    // printf 'sha256:aa…a sha256:bb…b' | sha256sum
    expect(chainId([a, b])).toBe("sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c");
  });
});
