// The policy source (Kubernetes informers on the fake API server that speaks list/watch)
// failing under the agent's create-time gate: unreachable at start, and lost mid-watch
// while the namespace's policy changes. Decisions go through the real Gate and the real
// KubernetesPolicySource; only verification is a fake (a digest → signer table), because the
// point here is which policy is selected, not signatures.
import { afterEach, describe, expect, it } from "vitest";
import type { Decision } from "../../src/decision/decision.js";
import { ExemptImages } from "../../src/decision/exempt.js";
import { Gate } from "../../src/agent/gate.js";
import type { PolicyRef } from "../../src/decision/ports.js";
import { KubernetesPolicySource } from "../../src/k8s/source.js";
import { FakeEngine, MemorySink, verdict } from "../agent/fakes.js";
import { newPublicKeyPem, policyDoc } from "../policy-source/fixtures.js";
import { FakeApiServer, type KObject, kubeConfigFor } from "../support/fake-apiserver.js";
import { freePort, waitFor } from "../support/procs.js";
import { countDecisions, recordResult } from "./results.js";

const FILE = "test/reliability/policy-source-faults.test.ts";
/** Asserted: after the API server comes back, decisions follow the current policy within this. */
const RESYNC_LIMIT_MS = 15_000;
/** The gate's request timeout in the harness: a decision slower than this missed containerd's deadline. */
const GATE_TIMEOUT_MS = 2000;
const backoff = { initialMs: 50, maxMs: 500, resetAfterMs: 5000 };
const SIGNED_FOR_BASELINE = `sha256:${"b".repeat(64)}`;
const SIGNED_FOR_STRICT = `sha256:${"c".repeat(64)}`;
const images: Record<string, string> = {
  "reg.example/app:baseline": SIGNED_FOR_BASELINE,
  "reg.example/app:strict": SIGNED_FOR_STRICT,
};

const ns = (name: string, annotations: Record<string, string> = {}): KObject => ({
  metadata: { name, annotations },
});
function seed(api: FakeApiServer, teamB: Record<string, string> = {}) {
  api.apply("namespaces", ns("team-a", { "tollgate.dev/policy": "strict" }));
  api.apply("namespaces", ns("team-b", teamB));
  api.apply("imagepolicies", policyDoc("strict", { key: newPublicKeyPem() }) as unknown as KObject);
  api.apply("imagepolicies", policyDoc("baseline", { key: newPublicKeyPem() }) as unknown as KObject);
}

function harness(src: KubernetesPolicySource) {
  const engine = new FakeEngine((subject, p: PolicyRef) =>
    verdict(p, subject, {
      allowed:
        (p.name === "strict" && subject.digest === SIGNED_FOR_STRICT) ||
        (p.name === "baseline" && subject.digest === SIGNED_FOR_BASELINE),
    }),
  );
  const sink = new MemorySink();
  const gate = new Gate({
    selector: src,
    engine,
    resolver: { resolve: async (name) => ({ reference: name, digest: images[name] ?? "sha256:x" }) },
    exemptImages: new ExemptImages([]),
    exemptNamespaces: [],
    budgetFraction: 0.75,
    requestTimeoutMs: () => GATE_TIMEOUT_MS,
    sink,
  });
  let n = 0;
  const create = (namespace: string, image: string): Promise<Decision> =>
    gate.createContainer(
      { id: `pod${++n}`, name: `pod${n}`, namespace },
      { id: `c${n}`, name: `c${n}`, annotations: { "io.kubernetes.cri.image-name": image } },
      { deadline: Date.now() + 2000 },
    );
  return { gate, sink, create };
}

let api: FakeApiServer | undefined;
let src: KubernetesPolicySource | undefined;
afterEach(async () => {
  await src?.stop();
  await api?.stop();
  api = undefined;
  src = undefined;
});

describe("policy source faults under the create-time gate", () => {
  it("API server unreachable at start: every create denied (never the default), then the real policy within the bound", async () => {
    const port = await freePort();
    src = new KubernetesPolicySource({
      kubeConfig: kubeConfigFor(`http://127.0.0.1:${port}`),
      config: { defaultPolicy: "baseline" },
      backoff,
    });
    await src.start();
    const { sink, create } = harness(src);
    const s = src;
    await waitFor("a failed list", () => s.status().sync.lastError !== undefined);
    const during: Decision[] = [];
    for (const nsName of ["team-a", "team-b"])
      for (const img of Object.keys(images)) during.push(await create(nsName, img));
    for (const d of during) expect(d.allowed, d.message).toBe(false);

    api = await FakeApiServer.start({ port });
    seed(api);
    const t0 = Date.now();
    await waitFor(
      "decisions follow the synced policies",
      async () =>
        (await create("team-a", "reg.example/app:strict")).allowed &&
        (await create("team-b", "reg.example/app:baseline")).allowed,
      RESYNC_LIMIT_MS,
    );
    const synced = Date.now() - t0;
    expect((await create("team-a", "reg.example/app:baseline")).allowed).toBe(false);
    expect(sink.decisions.every((d) => typeof d.allowed === "boolean")).toBe(true);
    expect(synced).toBeLessThanOrEqual(RESYNC_LIMIT_MS);
    const counted = countDecisions(sink.decisions, GATE_TIMEOUT_MS);
    expect(counted).toEqual({ crashes: 0, missedDeadlines: 0, undecided: 0 });
    recordResult({
      area: "fault",
      name: "policy source (API server) unreachable at start",
      path: "Gate + KubernetesPolicySource (client-node informers) → fake API server",
      cases: sink.decisions.length,
      outcome: `${during.length}/${during.length} creates denied while unsynced (fail closed, no default); decisions followed the policies ${(synced / 1000).toFixed(1)} s after the API server appeared (limit ${RESYNC_LIMIT_MS / 1000} s)`,
      ...counted,
      file: FILE,
    });
  });

  it("API server lost mid-watch: last-good policies keep deciding; a change made meanwhile applies after the relist", async () => {
    api = await FakeApiServer.start();
    seed(api);
    src = new KubernetesPolicySource({
      kubeConfig: api.kubeConfig(),
      config: { defaultPolicy: "baseline" },
      backoff,
    });
    await src.start();
    await src.whenReady(30_000);
    const { sink, create } = harness(src);
    expect((await create("team-b", "reg.example/app:baseline")).allowed).toBe(true);

    await api.stop();
    // While the API server is away, the last good state decides (and is not widened).
    const during = [
      await create("team-a", "reg.example/app:strict"),
      await create("team-a", "reg.example/app:baseline"),
      await create("team-b", "reg.example/app:baseline"),
      await create("team-b", "reg.example/app:strict"),
    ];
    expect(during.map((d) => d.allowed)).toEqual([true, false, true, false]);
    // team-b is moved to "strict" while the agent cannot see it; the informer must relist.
    api.modify("namespaces", "team-b", undefined, (o) => {
      o.metadata = { ...o.metadata, annotations: { "tollgate.dev/policy": "strict" } };
    });
    api.compact(); // the watch cannot resume from its old resourceVersion: 410 → relist
    await api.listen();
    const t0 = Date.now();
    await waitFor(
      "team-b decided by strict",
      async () => !(await create("team-b", "reg.example/app:baseline")).allowed,
      RESYNC_LIMIT_MS,
    );
    const relisted = Date.now() - t0;
    expect((await create("team-b", "reg.example/app:strict")).allowed).toBe(true);
    expect(relisted).toBeLessThanOrEqual(RESYNC_LIMIT_MS);
    const counted = countDecisions(sink.decisions, GATE_TIMEOUT_MS);
    expect(counted).toEqual({ crashes: 0, missedDeadlines: 0, undecided: 0 });
    recordResult({
      area: "fault",
      name: "policy source (API server) lost mid-watch",
      path: "Gate + KubernetesPolicySource (client-node informers) → fake API server (stop, change, compact, restart)",
      cases: sink.decisions.length,
      outcome: `during the outage the last good policies decided (4/4 as before); the namespace's new policy applied ${(relisted / 1000).toFixed(1)} s after the API server returned (limit ${RESYNC_LIMIT_MS / 1000} s)`,
      ...counted,
      file: FILE,
    });
  });
});
