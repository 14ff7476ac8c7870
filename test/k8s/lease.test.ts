// Leader election on a coordination.k8s.io/v1 Lease against the in-test API server, and the
// write semantics that election relies on (resourceVersion preconditions, 409s, MicroTime).
import { CoordinationV1Api } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { LeaseElector, microTime } from "../../src/k8s/lease.js";
import { type SourceLogger, silentLogger } from "../../src/policy-source/types.js";
import { FakeApiServer } from "../support/fake-apiserver.js";
import { waitFor } from "../support/procs.js";

const LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/tollgate-system/leases";

async function send(
  api: FakeApiServer,
  method: string,
  path: string,
  body: unknown,
  type = "application/json",
) {
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: { "Content-Type": type },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("in-test API server: write semantics", () => {
  let api: FakeApiServer | undefined;
  afterEach(async () => {
    await api?.stop();
    api = undefined;
  });

  it("create, conditional update, merge patch preconditions, MicroTime, status subresource", async () => {
    api = await FakeApiServer.start();
    const lease = {
      metadata: { name: "l" },
      spec: { holderIdentity: "a", leaseDurationSeconds: 15, renewTime: microTime(Date.now()) },
    };
    const created = await send(api, "POST", LEASE_PATH, lease);
    expect(created.status).toBe(201);
    const rv = (created.body.metadata as { resourceVersion: string }).resourceVersion;
    expect((await send(api, "POST", LEASE_PATH, lease)).body).toMatchObject({
      reason: "AlreadyExists",
      code: 409,
    });
    // Three fractional digits are refused, as kube-apiserver's MicroTime parser does.
    const badTime = { metadata: { name: "m" }, spec: { renewTime: new Date().toISOString() } };
    expect((await send(api, "POST", LEASE_PATH, badTime)).status).toBe(422);

    const put = (r: string | undefined, holder: string) =>
      send(api!, "PUT", `${LEASE_PATH}/l`, {
        metadata: { name: "l", ...(r !== undefined ? { resourceVersion: r } : {}) },
        spec: { holderIdentity: holder },
      });
    const ok = await put(rv, "b");
    expect(ok.status).toBe(200);
    const stale = await put(rv, "c");
    expect(stale.body).toMatchObject({ code: 409, reason: "Conflict" });
    expect(String(stale.body.message)).toContain("the object has been modified");
    expect((await put(undefined, "d")).status).toBe(200); // unconditional update
    expect((await send(api, "PUT", `${LEASE_PATH}/nope`, { metadata: { name: "nope" } })).status).toBe(404);

    const patchPath = `${LEASE_PATH}/l`;
    const merge = "application/merge-patch+json";
    expect((await send(api, "PATCH", patchPath, { spec: { holderIdentity: "e" } }, merge)).status).toBe(200);
    expect((await send(api, "PATCH", patchPath, { metadata: { resourceVersion: rv } }, merge)).status).toBe(
      409,
    );
    // A custom resource does not take strategic merge patches; JSON patch is not served here.
    expect((await send(api, "PATCH", patchPath, [], "application/json-patch+json")).status).toBe(415);
    expect(api.get("leases", "l", "tollgate-system")?.spec).toMatchObject({ holderIdentity: "e" });

    // ImagePolicy: main resource writes keep status and bump generation on spec changes only.
    api.apply("imagepolicies", { metadata: { name: "p" }, spec: { mode: "Enforce" } });
    expect(api.get("imagepolicies", "p")?.metadata.generation).toBe(1);
    const st = await send(
      api,
      "PATCH",
      "/apis/tollgate.dev/v1alpha1/imagepolicies/p/status",
      { status: { revision: "r1" }, spec: { mode: "Audit" } },
      merge,
    );
    expect(st.status).toBe(200);
    const p = api.get("imagepolicies", "p")!;
    expect(p.status).toEqual({ revision: "r1" });
    expect(p.spec).toEqual({ mode: "Enforce" }); // spec is not writable through /status
    expect(p.metadata.generation).toBe(1);
    api.apply("imagepolicies", { metadata: { name: "p" }, spec: { mode: "Enforce" }, status: { x: 1 } });
    expect(api.get("imagepolicies", "p")).toMatchObject({
      status: { revision: "r1" },
      metadata: { generation: 1 },
    });
    api.apply("imagepolicies", { metadata: { name: "p" }, spec: { mode: "Audit" } });
    expect(api.get("imagepolicies", "p")).toMatchObject({
      status: { revision: "r1" },
      metadata: { generation: 2 },
    });

    // Events: the involved object must live in the Event's namespace.
    const ev = (ns: string) => ({
      metadata: { name: "e1" },
      involvedObject: { kind: "Pod", name: "x", namespace: ns },
      reason: "R",
    });
    expect((await send(api, "POST", "/api/v1/namespaces/team-a/events", ev("team-b"))).status).toBe(422);
    expect((await send(api, "POST", "/api/v1/namespaces/team-a/events", ev("team-a"))).status).toBe(201);
  });
});

describe("LeaseElector", () => {
  let api: FakeApiServer | undefined;
  const electors: LeaseElector[] = [];
  afterEach(async () => {
    await Promise.all(electors.splice(0).map((e) => e.stop()));
    await api?.stop();
    api = undefined;
  });

  function candidate(id: string, logger: SourceLogger = silentLogger): LeaseElector {
    const e = new LeaseElector({
      kubeConfig: api!.kubeConfig(id),
      namespace: "tollgate-system",
      name: "tollgate-status-writer",
      identity: id,
      leaseDurationMs: 2000,
      renewDeadlineMs: 1000,
      retryPeriodMs: 100,
      logger,
    });
    electors.push(e);
    return e;
  }

  /** Samples leadership while `during` runs; fails on any moment with two leaders. */
  async function neverTwo<T>(es: LeaseElector[], during: () => Promise<T>): Promise<T> {
    let overlap = 0;
    const t = setInterval(() => {
      if (es.filter((e) => e.isLeader).length > 1) overlap++;
    }, 10);
    try {
      return await during();
    } finally {
      clearInterval(t);
      expect(overlap).toBe(0);
    }
  }

  const leaders = (es: LeaseElector[]) => es.filter((e) => e.isLeader);

  it("one leader among several; clean step-down hands over at once; a partitioned leader is replaced", async () => {
    api = await FakeApiServer.start();
    const es = ["agent-a", "agent-b", "agent-c"].map((id) => candidate(id));
    await neverTwo(es, async () => {
      for (const e of es) e.start();
      await waitFor("a leader", () => leaders(es).length === 1);
      // It stays one leader while it renews.
      await new Promise((r) => setTimeout(r, 800));
      expect(leaders(es)).toHaveLength(1);
    });
    const first = leaders(es)[0]!;
    const lease = api.get("leases", "tollgate-status-writer", "tollgate-system")!;
    expect(lease.spec).toMatchObject({
      holderIdentity: (first as unknown as { o: { identity: string } }).o.identity,
    });

    // Step down on shutdown: the lease is released (see the next test), another candidate takes it.
    const rest = es.filter((e) => e !== first);
    await neverTwo(es, async () => {
      await first.stop();
      expect(first.isLeader).toBe(false);
      await waitFor("a successor", () => leaders(rest).length === 1);
    });
    const second = leaders(rest)[0]!;
    const after = api.get("leases", "tollgate-status-writer", "tollgate-system")!;
    expect((after.spec as { leaseTransitions: number }).leaseTransitions).toBeGreaterThanOrEqual(1);

    // Leader loss without a goodbye: the API server stops answering the leader. It steps
    // down after its renew deadline; the last candidate takes over once the lease expired.
    const third = rest.find((e) => e !== second)!;
    const secondId = (second as unknown as { o: { identity: string } }).o.identity;
    api.setFault((r) => (r.auth === `Bearer ${secondId}` ? 503 : undefined));
    await neverTwo([second, third], async () => {
      await waitFor("the partitioned leader steps down", () => !second.isLeader, 10_000);
      await waitFor("the last candidate leads", () => third.isLeader, 10_000);
    });
    // Back from the partition, the old leader sees the new holder and stays a candidate.
    api.setFault(undefined);
    await new Promise((r) => setTimeout(r, 500));
    expect(second.isLeader).toBe(false);
    expect(third.isLeader).toBe(true);
  });

  it("stop() releases the lease: no holder, shortest duration", async () => {
    api = await FakeApiServer.start();
    const a = candidate("agent-a");
    a.start();
    await waitFor("a leads", () => a.isLeader);
    await a.stop();
    expect(api.get("leases", "tollgate-status-writer", "tollgate-system")?.spec).toMatchObject({
      holderIdentity: "",
      leaseDurationSeconds: 1,
    });
  });

  it("races (AlreadyExists, Conflict) cost a round, not an error; a forced takeover is respected", async () => {
    api = await FakeApiServer.start();
    const warnings: unknown[] = [];
    const logger = { ...silentLogger, warn: (o: object) => warnings.push(o) };
    const es = ["a", "b", "c", "d", "e"].map((id) => candidate(id, logger));
    // All start in the same tick: every one finds no Lease and tries to create it.
    for (const e of es) e.start();
    await waitFor("a leader", () => leaders(es).length === 1);
    const creates = api.writes("leases").filter((r) => r.method === "POST");
    expect(creates.filter((r) => r.status === 201)).toHaveLength(1);
    expect(creates.filter((r) => r.status === 409).length).toBeGreaterThan(0);
    expect(warnings).toEqual([]);

    // Someone else takes the lease by force (an admin, another implementation).
    const leader = leaders(es)[0]!;
    const coord = api.kubeConfig("admin").makeApiClient(CoordinationV1Api);
    const l = await coord.readNamespacedLease({
      name: "tollgate-status-writer",
      namespace: "tollgate-system",
    });
    await coord.replaceNamespacedLease({
      name: "tollgate-status-writer",
      namespace: "tollgate-system",
      body: {
        ...l,
        spec: {
          ...l.spec,
          holderIdentity: "intruder",
          leaseDurationSeconds: 30,
          renewTime: microTime(Date.now()) as unknown as Date,
        },
      },
    });
    await waitFor("the leader steps down for the new holder", () => !leader.isLeader, 5000);
    expect(leader.holder).toBe("intruder");
    // Nobody of ours takes a lease that another holder renewed less than its duration ago.
    await new Promise((r) => setTimeout(r, 600));
    expect(leaders(es)).toHaveLength(0);
    expect(warnings).toEqual([]);
  });
});
