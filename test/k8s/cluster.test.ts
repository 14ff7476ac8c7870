// Kubernetes-native visibility against the in-test API server: several agents (policy source
// + Lease election + status writer each), ImagePolicy.status written once per cluster and
// taken over on leader loss; pod Events aggregated under a retry storm.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { AgentMetrics } from "../../src/agent/metrics.js";
import { type ClusterVisibility, startClusterVisibility } from "../../src/k8s/cluster.js";
import { EVENT_REASON_DENIED, type PodDenial, PodEventRecorder } from "../../src/k8s/events.js";
import { KubernetesPolicySource } from "../../src/k8s/source.js";
import { desiredStatus, PolicyStatusWriter } from "../../src/k8s/status-writer.js";
import { type PolicyOutcome, silentLogger } from "../../src/policy-source/types.js";
import { newPublicKeyPem, policyDoc } from "../policy-source/fixtures.js";
import { validate } from "../deploy/schema.js";
import { FakeApiServer, type KObject } from "../support/fake-apiserver.js";
import { waitFor } from "../support/procs.js";

const backoff = { initialMs: 50, maxMs: 400, resetAfterMs: 5000 };
const keyA = newPublicKeyPem();
const policy = (name: string, spec: Record<string, unknown> = {}) =>
  ({
    ...policyDoc(name, { key: keyA }),
    ...(Object.keys(spec).length ? { spec } : {}),
  }) as unknown as KObject;
const missingTrust = (name: string) =>
  policyDoc(name, {
    key: { configMap: { namespace: "tollgate-trust", name: "absent", key: "cosign.pub" } },
  }) as unknown as KObject;

interface Agent {
  id: string;
  source: KubernetesPolicySource;
  cluster: ClusterVisibility;
}

type Cond = { type: string; status: string; reason: string; message: string; observedGeneration: number };
const conditions = (o: KObject | undefined) =>
  ((o?.status as { conditions?: Cond[] } | undefined)?.conditions ?? []) as Cond[];
const cond = (o: KObject | undefined, type: string) => conditions(o).find((c) => c.type === type);
const statusWrites = (api: FakeApiServer) =>
  api.writes("imagepolicies").filter((r) => r.path.endsWith("/status"));

describe("ImagePolicy status: one writer per cluster", () => {
  let api: FakeApiServer | undefined;
  const agents: Agent[] = [];
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => stopAgent(a)));
    await api?.stop();
    api = undefined;
  });

  async function stopAgent(a: Agent) {
    await a.cluster.stop();
    await a.source.stop();
  }

  async function startAgents(n: number): Promise<Agent[]> {
    const out: Agent[] = [];
    for (let i = 0; i < n; i++) {
      const id = `node-${i}`;
      const kc = api!.kubeConfig(id);
      const source = new KubernetesPolicySource({
        kubeConfig: kc,
        config: { defaultPolicy: "good" },
        backoff,
        trustSyncTimeoutMs: 1000,
      });
      await source.start();
      const cluster = startClusterVisibility({
        settings: {
          statusWriter: true,
          podEvents: false,
          leaseNamespace: "tollgate-system",
          leaseName: "tollgate-status-writer",
          leaseDurationSeconds: 3,
          nodeName: id,
        },
        source,
        logger: silentLogger,
        kubeConfig: kc,
        env: {},
        renewDeadlineMs: 1500,
        retryPeriodMs: 100,
        statusDebounceMs: 50,
      });
      out.push({ id, source, cluster });
    }
    agents.push(...out);
    for (const a of out) await a.source.whenReady(30_000);
    return out;
  }

  const leader = () => agents.filter((a) => a.cluster.isLeader());

  it("conditions and revision written by the lease holder only; leader loss hands the job over", async () => {
    api = await FakeApiServer.start();
    api.apply("namespaces", { metadata: { name: "team-a" } });
    api.apply("imagepolicies", policy("good"));
    api.apply("imagepolicies", missingTrust("needs-trust"));
    api.apply("imagepolicies", policy("bad", { verifiers: [{ name: "x", nonsense: {} }] }));
    const all = await startAgents(3);

    await waitFor("status on every policy", () =>
      ["good", "needs-trust", "bad"].every((n) => cond(api!.get("imagepolicies", n), "Ready") !== undefined),
    );
    const revision = all[0]!.source.policies().find((p) => p.name === "good")!.revision;
    const good = api.get("imagepolicies", "good")!;
    expect(good.status).toMatchObject({ observedGeneration: 1, revision });
    expect(cond(good, "Ready")).toMatchObject({ status: "True", reason: "Accepted", observedGeneration: 1 });
    expect(cond(good, "Invalid")).toMatchObject({ status: "False", reason: "Valid" });
    const trust = api.get("imagepolicies", "needs-trust")!;
    expect(cond(trust, "Ready")).toMatchObject({ status: "False", reason: "Invalid" });
    expect(cond(trust, "Invalid")).toMatchObject({ status: "True", reason: "TrustMaterialUnavailable" });
    expect(cond(trust, "Invalid")!.message).toContain("tollgate-trust/absent");
    expect((trust.status as { revision?: string }).revision).toBeUndefined();
    const bad = api.get("imagepolicies", "bad")!;
    expect(cond(bad, "Invalid")).toMatchObject({ status: "True", reason: "ValidationFailed" });
    expect(cond(bad, "Invalid")!.message).toMatch(/verifiers/);

    // Written once for the cluster: one write per policy, all from the one lease holder.
    expect(leader()).toHaveLength(1);
    const writer = leader()[0]!;
    await new Promise((r) => setTimeout(r, 500)); // let any redundant writer show itself
    const writes = statusWrites(api);
    expect(writes).toHaveLength(3);
    expect(new Set(writes.map((w) => w.auth))).toEqual(new Set([`Bearer ${writer.id}`]));

    // A refused update: the earlier revision stays in force and says so.
    api.apply("imagepolicies", policy("good", { verifiers: [] }));
    await waitFor(
      "update rejected",
      () => cond(api!.get("imagepolicies", "good"), "Ready")?.status === "False",
    );
    const rejected = api.get("imagepolicies", "good")!;
    expect(rejected.status).toMatchObject({ observedGeneration: 2, revision });
    expect(cond(rejected, "Ready")).toMatchObject({ reason: "UpdateRejected", observedGeneration: 2 });
    expect(cond(rejected, "Ready")!.message).toContain(revision);

    // The leader stops (rollout): another agent takes the lease; it finds nothing to rewrite.
    const before = statusWrites(api).length;
    agents.splice(agents.indexOf(writer), 1);
    await stopAgent(writer);
    await waitFor("a new writer", () => leader().length === 1);
    const next = leader()[0]!;
    expect(next.id).not.toBe(writer.id);
    await new Promise((r) => setTimeout(r, 400));
    expect(statusWrites(api).length).toBe(before);

    // It writes the next change; the remaining non-leader does not.
    api.apply("imagepolicies", policy("good"));
    await waitFor(
      "fixed policy ready",
      () => cond(api!.get("imagepolicies", "good"), "Ready")?.status === "True",
    );
    expect(api.get("imagepolicies", "good")!.status).toMatchObject({ observedGeneration: 3, revision });
    const late = statusWrites(api).slice(before);
    expect(new Set(late.map((w) => w.auth))).toEqual(new Set([`Bearer ${next.id}`]));

    // Leader loss without a goodbye (partitioned from the API server): the other agent
    // takes over once the lease has expired and keeps status current.
    api.setFault((r) => (r.auth === `Bearer ${next.id}` ? 503 : undefined));
    const last = agents.find((a) => a !== next)!;
    await waitFor("the last agent writes status", () => last.cluster.isLeader(), 15_000);
    api.apply("imagepolicies", missingTrust("good"));
    await waitFor(
      "status follows",
      () => cond(api!.get("imagepolicies", "good"), "Invalid")?.status === "True",
    );
    const fromLast = statusWrites(api).filter((w) => w.status === 200 && w.auth === `Bearer ${last.id}`);
    expect(fromLast.length).toBeGreaterThan(0);
    expect(api.get("imagepolicies", "good")!.status).toMatchObject({ observedGeneration: 4, revision });
  });

  it("a status changed by someone else is restored; a write from an old resourceVersion gets 409 and waits", async () => {
    api = await FakeApiServer.start();
    api.apply("imagepolicies", policy("good"));
    const [a] = await startAgents(1);
    await waitFor("status written", () => cond(api!.get("imagepolicies", "good"), "Ready") !== undefined);
    api.apply(
      "imagepolicies",
      { ...api.get("imagepolicies", "good")!, status: { conditions: [] } },
      {
        subresource: "status",
      },
    );
    // Nothing in the source changed, so only a resync notices; run one pass now.
    await waitFor("status restored", async () => {
      await a!.cluster.writer!.reconcile();
      return cond(api!.get("imagepolicies", "good"), "Ready")?.status === "True";
    });

    // A writer whose view is older than the object: its precondition fails, nothing is lost.
    const stale = new PolicyStatusWriter({
      kubeConfig: api.kubeConfig("stale"),
      outcomes: async () => [
        { name: "good", revision: "old", generation: 1, resourceVersion: "1", status: undefined },
      ],
      isLeader: () => true,
      logger: silentLogger,
    });
    expect(await stale.reconcile()).toBe(0);
    expect(
      statusWrites(api)
        .filter((w) => w.auth === "Bearer stale")
        .map((w) => w.status),
    ).toEqual([409]);
    expect(api.get("imagepolicies", "good")!.status).not.toMatchObject({ revision: "old" });
  });

  it("desiredStatus keeps lastTransitionTime while a condition's status holds", () => {
    const t0 = new Date("2026-01-01T00:00:00Z");
    const s1 = desiredStatus(
      { name: "p", revision: "r1", generation: 1, resourceVersion: "1", status: undefined },
      t0,
    );
    const s2 = desiredStatus(
      { name: "p", revision: "r2", generation: 2, resourceVersion: "2", status: s1 },
      new Date("2026-01-02T00:00:00Z"),
    );
    expect(s2.conditions[0]).toMatchObject({ status: "True", lastTransitionTime: "2026-01-01T00:00:00Z" });
    const s3 = desiredStatus(
      {
        name: "p",
        revision: "r2",
        generation: 3,
        resourceVersion: "3",
        status: s2,
        rejected: { reason: "x", at: "" },
      },
      new Date("2026-01-03T00:00:00Z"),
    );
    expect(s3.conditions[0]).toMatchObject({ status: "False", lastTransitionTime: "2026-01-03T00:00:00Z" });
    const none = desiredStatus(
      {
        name: "p",
        generation: 1,
        resourceVersion: "1",
        status: undefined,
        rejected: { reason: "y".repeat(5000), at: "" },
      },
      t0,
    );
    expect(none.revision).toBeUndefined();
    expect(none.conditions[1]!.message.length).toBeLessThanOrEqual(1024);
    const multi = desiredStatus(
      {
        name: "p",
        generation: 1,
        resourceVersion: "1",
        status: undefined,
        rejected: { reason: "a\n  b\nc", at: "" },
      },
      t0,
    );
    expect(multi.conditions[1]!.message).toBe("a; b; c");
    // Every shape written passes the CRD's status schema (what the API server would enforce).
    const crd = parseYaml(
      readFileSync(path.resolve(import.meta.dirname, "../../deploy/crds/imagepolicy.yaml"), "utf8"),
    );
    const statusSchema = crd.spec.versions[0].schema.openAPIV3Schema.properties.status;
    for (const st of [s1, s2, s3, none]) expect(validate(statusSchema, st, "status")).toEqual([]);
    // And kubectl's printer columns find what they read.
    const columns = crd.spec.versions[0].additionalPrinterColumns.map(
      (c: { jsonPath: string }) => c.jsonPath,
    );
    expect(columns).toContain(".status.revision");
    expect(columns).toContain('.status.conditions[?(@.type=="Ready")].status');
  });
});

describe("pod Events for denials", () => {
  let api: FakeApiServer | undefined;
  let rec: PodEventRecorder | undefined;
  afterEach(async () => {
    await rec?.stop();
    await api?.stop();
    rec = undefined;
    api = undefined;
  });

  const denial = (pod: string, over: Partial<PodDenial> = {}): PodDenial => ({
    namespace: "team-a",
    pod,
    podUid: `uid-${pod}`,
    container: "app",
    image: "registry.example/app:1",
    digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    policy: { name: "strict", revision: "r1" },
    reason: "no signature from a trusted key",
    kind: "rejected",
    ...over,
  });
  const eventsOf = (pod: string) =>
    api!.list("events", "team-a").filter((e) => (e.involvedObject as { name: string }).name === pod);

  it("a retry storm of 50 denials is one Event whose count says 50, in a bounded number of writes", async () => {
    api = await FakeApiServer.start();
    rec = new PodEventRecorder({
      kubeConfig: api.kubeConfig(),
      node: "node-1",
      logger: silentLogger,
      patchIntervalMs: 300,
    });
    for (let i = 0; i < 50; i++) {
      rec.denied(denial("web-1"));
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 50));
    }
    await waitFor("count 50 written", () => eventsOf("web-1")[0]?.count === 50);
    const [ev] = eventsOf("web-1");
    expect(eventsOf("web-1")).toHaveLength(1);
    expect(ev).toMatchObject({
      type: "Warning",
      reason: EVENT_REASON_DENIED,
      involvedObject: { kind: "Pod", name: "web-1", namespace: "team-a", uid: "uid-web-1", apiVersion: "v1" },
      source: { component: "tollgate", host: "node-1" },
      reportingInstance: "node-1",
      metadata: {
        annotations: {
          "tollgate.dev/policy": "strict",
          "tollgate.dev/digest": denial("x").digest,
        },
      },
    });
    expect(String(ev!.message)).toContain("ImagePolicy strict (revision r1)");
    expect(String(ev!.message)).toContain(denial("x").digest!);
    expect(String(ev!.message)).toContain("no signature from a trusted key");
    expect(Date.parse(String(ev!.lastTimestamp))).toBeGreaterThanOrEqual(
      Date.parse(String(ev!.firstTimestamp)),
    );
    // 1 create + at most a few patches (one per patch interval the storm spanned).
    const writes = api.writes("events");
    expect(writes.filter((w) => w.method === "POST")).toHaveLength(1);
    expect(writes.length).toBeLessThanOrEqual(4);
    expect(rec.stats.occurrences).toBe(50);
  });

  it("different pods, containers or digests are different Events; the write rate is bounded", async () => {
    api = await FakeApiServer.start();
    rec = new PodEventRecorder({
      kubeConfig: api.kubeConfig(),
      node: "node-1",
      logger: silentLogger,
      patchIntervalMs: 100,
      burst: 5,
      perSecond: 20,
    });
    for (let i = 0; i < 30; i++) rec.denied(denial(`pod-${i}`));
    rec.denied(denial("pod-0", { container: "sidecar" }));
    rec.denied(denial("pod-0", { digest: `sha256:${"f".repeat(64)}`, kind: "failed" }));
    // Only the burst is written at once; the rest follow as tokens return.
    await new Promise((r) => setTimeout(r, 20));
    expect(api.writes("events").length).toBeLessThanOrEqual(5);
    await waitFor("every Event written", () => api!.list("events", "team-a").length === 32, 10_000);
    expect(
      eventsOf("pod-0")
        .map((e) => e.reason)
        .sort(),
    ).toEqual([EVENT_REASON_DENIED, EVENT_REASON_DENIED, "ImageVerificationFailed"]);
    expect(rec.stats.throttled).toBeGreaterThan(0);
  });

  it("an Event the API server expired is created again with the running count; stop() flushes", async () => {
    api = await FakeApiServer.start();
    rec = new PodEventRecorder({
      kubeConfig: api.kubeConfig(),
      node: "n",
      logger: silentLogger,
      patchIntervalMs: 60_000,
    });
    rec.denied(denial("web-2"));
    await waitFor("created", () => eventsOf("web-2").length === 1);
    api.delete("events", eventsOf("web-2")[0]!.metadata.name, "team-a");
    rec.denied(denial("web-2"));
    rec.denied(denial("web-2"));
    // The patch interval is long: stop() writes what is pending (patch → 404 → create).
    await rec.stop();
    const again = eventsOf("web-2");
    expect(again).toHaveLength(1);
    expect(again[0]!.count).toBe(3);
  });
});

describe("metrics: tollgate_policy_ready, tollgate_build_info, tollgate_status_writer", () => {
  it("read the source's outcomes and the leadership at scrape time", async () => {
    const m = new AgentMetrics();
    let outcomes: PolicyOutcome[] = [
      { name: "good", revision: "r1" },
      { name: "kept", revision: "r1", rejected: { reason: "bad update", at: "" } },
      { name: "never", rejected: { reason: "invalid", at: "" } },
    ];
    let leader = false;
    m.watchPolicies(() => outcomes);
    m.watchLeadership(() => leader);
    m.setBuildInfo("1.2.3");
    let text = await m.registry.metrics();
    expect(text).toContain('tollgate_policy_ready{policy="good"} 1');
    expect(text).toContain('tollgate_policy_ready{policy="kept"} 0');
    expect(text).toContain('tollgate_policy_ready{policy="never"} 0');
    expect(text).toContain(`tollgate_build_info{version="1.2.3",node="${process.version}"} 1`);
    expect(text).toContain("tollgate_status_writer 0");
    // A deleted policy disappears; leadership follows the elector.
    outcomes = [{ name: "good", revision: "r2" }];
    leader = true;
    text = await m.registry.metrics();
    expect(text).not.toContain('policy="kept"');
    expect(text).toContain("tollgate_status_writer 1");
  });
});
