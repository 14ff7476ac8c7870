import { afterEach, describe, expect, it } from "vitest";
import { KubernetesPolicySource } from "../../src/k8s/source.js";
import type { SelectionConfig } from "../../src/policy-source/types.js";
import { newPublicKeyPem, policyDoc } from "../policy-source/fixtures.js";
import { FakeApiServer, type KObject, kubeConfigFor } from "../support/fake-apiserver.js";
import { freePort, waitFor } from "../support/procs.js";

const config: SelectionConfig = { defaultPolicy: "baseline", exemptNamespaces: ["kube-system"] };
const backoff = { initialMs: 50, maxMs: 400, resetAfterMs: 5000 };
const keyA = newPublicKeyPem();
const keyA2 = newPublicKeyPem();
const keyBase = newPublicKeyPem();
const trustRef = { configMap: { namespace: "tollgate-system", name: "trust-a", key: "cosign.pub" } };

const ns = (name: string, annotations: Record<string, string> = {}): KObject => ({
  metadata: { name, annotations },
});
const policy = (name: string, o: Parameters<typeof policyDoc>[1]) => policyDoc(name, o) as unknown as KObject;

function seed(api: FakeApiServer): void {
  api.apply("namespaces", ns("team-a", { "tollgate.dev/policy": "strict" }));
  api.apply("namespaces", ns("team-b"));
  api.apply("namespaces", ns("kube-system"));
  api.apply("configmaps", {
    metadata: { name: "trust-a", namespace: "tollgate-system" },
    data: { "cosign.pub": keyA },
  });
  // An unrelated ConfigMap and Secret in the same namespace: never read.
  api.apply("configmaps", { metadata: { name: "other", namespace: "tollgate-system" }, data: { x: "y" } });
  api.apply("secrets", {
    metadata: { name: "db-password", namespace: "team-a" },
    data: { pw: "aHVudGVyMg==" },
  });
  api.apply("imagepolicies", policy("strict", { key: trustRef }));
  api.apply("imagepolicies", policy("baseline", { key: keyBase }));
}

const nameOf = (s: ReturnType<KubernetesPolicySource["select"]>) =>
  s.kind === "policy" ? s.policy.name : s.kind;
const rev = (src: KubernetesPolicySource, name: string) =>
  src.policies().find((p) => p.name === name)?.revision;

describe("KubernetesPolicySource against a fake API server", () => {
  let api: FakeApiServer | undefined;
  let src: KubernetesPolicySource | undefined;

  afterEach(async () => {
    await src?.stop();
    await api?.stop();
    src = undefined;
    api = undefined;
  });

  async function setup(opts: { goneAs?: "event" | "http" } = {}) {
    api = await FakeApiServer.start(opts);
    seed(api);
    src = new KubernetesPolicySource({ kubeConfig: api.kubeConfig(), config, backoff });
    await src.start();
    await src.whenReady(30_000);
    return { api, src };
  }

  it("syncs namespaces and policies, selects by annotation/default, watches only referenced trust objects", async () => {
    const { api, src } = await setup();
    expect(src.status()).toMatchObject({
      source: "kubernetes",
      ready: true,
      sync: { state: "synced" },
      rejected: [],
    });
    expect(nameOf(src.select("team-a"))).toBe("strict");
    expect(nameOf(src.select("team-b"))).toBe("baseline");
    expect(src.select("kube-system").kind).toBe("exempt");
    // A namespace the API server has not told us about fails closed, not to the default.
    expect(src.select("brand-new")).toMatchObject({ kind: "error", failurePolicy: "Closed" });
    expect(src.watchedTrustObjects()).toEqual(["ConfigMap/tollgate-system/trust-a"]);

    // Readiness means "cache populated"; the watch requests themselves may still be in flight.
    await waitFor("three watches open", () => api.activeWatches() === 3);
    const reqs = api.requests;
    expect(reqs.some((r) => r.path === "/api/v1/namespaces" && !r.watch)).toBe(true);
    expect(reqs.some((r) => r.path === "/apis/tollgate.dev/v1alpha1/imagepolicies" && !r.watch)).toBe(true);
    const watches = reqs.filter((r) => r.watch);
    expect(watches.length).toBeGreaterThanOrEqual(3);
    for (const w of watches) {
      expect(w.query.allowWatchBookmarks).toBe("true");
      expect(w.query.resourceVersion).toMatch(/^\d+$/);
    }
    // Least privilege: trust objects only by name in their namespace; no Secret is ever listed.
    const trustReqs = reqs.filter((r) => /secrets|configmaps/.test(r.path));
    expect(trustReqs.length).toBeGreaterThan(0);
    for (const r of trustReqs) {
      expect(r.path).toBe("/api/v1/namespaces/tollgate-system/configmaps");
      expect(r.query.fieldSelector).toBe("metadata.name=trust-a");
    }
  });

  it("namespace annotation changes take effect; removing it falls back to the default", async () => {
    const { api, src } = await setup();
    api.modify("namespaces", "team-b", undefined, (o) => {
      o.metadata.annotations = { "tollgate.dev/policy": "strict" };
    });
    await waitFor("team-b on strict", () => nameOf(src.select("team-b")) === "strict");
    api.modify("namespaces", "team-a", undefined, (o) => {
      o.metadata.annotations = {};
    });
    await waitFor("team-a on default", () => nameOf(src.select("team-a")) === "baseline");
    api.modify("namespaces", "team-a", undefined, (o) => {
      o.metadata.annotations = { "tollgate.dev/policy": "no-such-policy" };
    });
    await waitFor("team-a fails closed", () => src.select("team-a").kind === "error");
    api.apply("namespaces", ns("team-c"));
    await waitFor("new namespace on default", () => nameOf(src.select("team-c")) === "baseline");
    api.delete("namespaces", "team-c");
    await waitFor("deleted namespace unknown", () => src.select("team-c").kind === "error");
  });

  it("policy updates and trust material updates change the revision; deletes fail closed", async () => {
    const { api, src } = await setup();
    const r1 = rev(src, "strict");
    api.apply("imagepolicies", policy("strict", { key: trustRef, mode: "Audit" }));
    await waitFor("strict revision 2", () => rev(src, "strict") !== r1);
    const r2 = rev(src, "strict");
    expect(src.policies().find((p) => p.name === "strict")?.mode).toBe("Audit");
    api.modify("configmaps", "trust-a", "tollgate-system", (o) => {
      o.data = { "cosign.pub": keyA2 };
    });
    await waitFor("strict revision 3 from the ConfigMap", () => rev(src, "strict") !== r2);
    api.delete("imagepolicies", "strict");
    await waitFor("strict gone", () => rev(src, "strict") === undefined);
    expect(src.select("team-a")).toMatchObject({ kind: "error", failurePolicy: "Closed" });
    // The ConfigMap informer is no longer needed and is stopped.
    await waitFor("trust informer released", () => src.watchedTrustObjects().length === 0);
  });

  it("an invalid policy update keeps the last good revision and shows the rejection", async () => {
    const { api, src } = await setup();
    const good = rev(src, "strict");
    api.apply(
      "imagepolicies",
      policy("strict", { key: trustRef, extraSpec: { failurePolicy: "Sometimes" } }),
    );
    await waitFor("rejection", () => src.status().rejected.length > 0);
    const st = src.status();
    expect(st.rejected[0]).toMatchObject({ policy: "strict", keptRevision: good });
    expect(st.rejected[0]?.reason).toMatch(/spec\.failurePolicy/);
    expect(st.rejected[0]?.origin).toMatch(/^ImagePolicy\/strict@\d+$/);
    expect(rev(src, "strict")).toBe(good);
    expect(nameOf(src.select("team-a"))).toBe("strict");

    // Trust material that disappears is also an invalid update: the last good revision stays.
    api.delete("configmaps", "trust-a", "tollgate-system");
    api.apply("imagepolicies", policy("strict", { key: trustRef, mode: "Audit" }));
    await waitFor("second rejection", () => src.status().rejected.length > 1);
    expect(src.status().rejected[0]?.reason).toMatch(/trust-a.*does not exist/);
    expect(rev(src, "strict")).toBe(good);

    // The ConfigMap comes back: the pending document compiles, a new revision lands.
    api.apply("configmaps", {
      metadata: { name: "trust-a", namespace: "tollgate-system" },
      data: { "cosign.pub": keyA },
    });
    await waitFor("recovered revision", () => rev(src, "strict") !== good);
    expect(src.policies().find((p) => p.name === "strict")?.mode).toBe("Audit");
  });

  it("follows bookmarks: a re-watch after compaction resumes from the bookmark, without 410 or relist", async () => {
    const { api, src } = await setup();
    // Unrelated writes move the global resourceVersion past what the namespace informer saw.
    api.apply("configmaps", { metadata: { name: "unrelated", namespace: "x" }, data: {} });
    const bookmarkRv = api.resourceVersion();
    await waitFor("watches open", () => api.activeWatches() === 3);
    expect(api.bookmark()).toBe(3);
    const nsRv = () => src.informers().find((i) => i.path === "/api/v1/namespaces")?.resourceVersion;
    await waitFor("bookmark read by the namespace informer", () => nsRv() === bookmarkRv);
    api.compact();
    const before = api.requests.length;
    api.dropConnections();
    await waitFor("namespace re-watch", () =>
      api.requests.slice(before).some((r) => r.path === "/api/v1/namespaces" && r.watch),
    );
    const after = api.requests.slice(before).filter((r) => r.path === "/api/v1/namespaces");
    expect(after.every((r) => r.watch)).toBe(true); // no relist
    expect(after[0]?.query.resourceVersion).toBe(bookmarkRv);
    expect(after[0]?.status).toBe(200);
    api.modify("namespaces", "team-b", undefined, (o) => {
      o.metadata.annotations = { "tollgate.dev/policy": "strict" };
    });
    await waitFor("change after re-watch", () => nameOf(src.select("team-b")) === "strict");
  });

  for (const goneAs of ["event", "http"] as const) {
    it(`410 Gone (${goneAs}) → relist, including deletions missed while disconnected`, async () => {
      const { api, src } = await setup({ goneAs });
      await api.stop();
      api.modify("namespaces", "team-b", undefined, (o) => {
        o.metadata.annotations = { "tollgate.dev/policy": "strict" };
      });
      api.delete("imagepolicies", "baseline");
      api.compact();
      const before = api.requests.length;
      await api.listen();
      await waitFor("relisted namespaces", () => nameOf(src.select("team-b")) === "strict", 30_000);
      await waitFor("missed delete applied", () => rev(src, "baseline") === undefined, 30_000);
      const seen = api.requests.slice(before).filter((r) => r.path === "/api/v1/namespaces");
      const gone = seen.findIndex((r) => r.watch && r.status === 410);
      expect(gone).toBeGreaterThanOrEqual(0);
      expect(seen.slice(gone + 1).some((r) => !r.watch)).toBe(true); // a list after the 410
      expect(src.select("team-c").kind).toBe("error");
      await waitFor("synced again", () => src.status().sync.state === "synced");
    });
  }

  it("recovers from dropped connections", async () => {
    const { api, src } = await setup();
    for (let i = 0; i < 3; i++) {
      const watchesBefore = api.requests.filter((r) => r.watch).length;
      api.dropConnections();
      await waitFor("re-watch", () => api.requests.filter((r) => r.watch).length >= watchesBefore + 2);
      api.modify("namespaces", "team-b", undefined, (o) => {
        o.metadata.annotations = { "tollgate.dev/policy": i % 2 === 0 ? "strict" : "baseline" };
      });
      const want = i % 2 === 0 ? "strict" : "baseline";
      await waitFor(`team-b → ${want}`, () => nameOf(src.select("team-b")) === want);
    }
    // Errors while reconnecting are visible in status.
    await waitFor("synced", () => src.status().sync.state === "synced");
  });

  it("API server unreachable at start → not ready and fails closed; then syncs when it appears", async () => {
    const port = await freePort();
    src = new KubernetesPolicySource({
      kubeConfig: kubeConfigFor(`http://127.0.0.1:${port}`),
      config,
      backoff,
    });
    await src.start();
    const s = src;
    await waitFor("a failed attempt", () => s.status().sync.lastError !== undefined);
    expect(src.status()).toMatchObject({ ready: false, sync: { state: "starting" } });
    expect(src.select("team-a")).toMatchObject({ kind: "error", failurePolicy: "Closed" });
    expect(
      src.select("team-a").kind === "error" && (src.select("team-a") as { message: string }).message,
    ).toMatch(/not synced/);
    expect(src.select("kube-system").kind).toBe("exempt");

    api = await FakeApiServer.start({ port });
    seed(api);
    await src.whenReady(30_000);
    expect(src.status()).toMatchObject({ ready: true, sync: { state: "synced" } });
    expect(nameOf(src.select("team-a"))).toBe("strict");
    expect(nameOf(src.select("team-b"))).toBe("baseline");
  });

  it("API errors on list are retried with back-off", async () => {
    api = await FakeApiServer.start();
    seed(api);
    let failures = 0;
    api.setFault((r) => (r.path.includes("imagepolicies") && failures++ < 3 ? 500 : undefined));
    src = new KubernetesPolicySource({ kubeConfig: api.kubeConfig(), config, backoff });
    await src.start();
    await src.whenReady(30_000);
    expect(failures).toBeGreaterThanOrEqual(3);
    expect(nameOf(src.select("team-a"))).toBe("strict");
  });

  it("reads trust material from a Secret (base64 data) by name only", async () => {
    api = await FakeApiServer.start();
    seed(api);
    api.apply("secrets", {
      metadata: { name: "cosign-key", namespace: "tollgate-system" },
      data: { "cosign.pub": Buffer.from(keyA2).toString("base64") },
    });
    const doc = policyDoc("strict", { key: keyA }) as {
      spec: { verifiers: { cosign: { keys: unknown[] } }[] };
    };
    doc.spec.verifiers[0]!.cosign.keys = [
      { name: "k", secretRef: { namespace: "tollgate-system", name: "cosign-key", key: "cosign.pub" } },
    ];
    api.apply("imagepolicies", doc as unknown as KObject);
    src = new KubernetesPolicySource({ kubeConfig: api.kubeConfig(), config, backoff });
    await src.start();
    await src.whenReady(30_000);
    expect(src.status().rejected).toEqual([]);
    expect(src.watchedTrustObjects()).toEqual(["Secret/tollgate-system/cosign-key"]);
    const p = src.select("team-a");
    expect(
      p.kind === "policy" &&
        p.policy.verifiers[0]?.kind === "cosign" &&
        p.policy.verifiers[0].cosign.keys?.[0]?.pem,
    ).toBe(keyA2);
    const secretReqs = api.requests.filter((r) => r.path.includes("secrets"));
    expect(secretReqs.every((r) => r.path === "/api/v1/namespaces/tollgate-system/secrets")).toBe(true);
    expect(secretReqs.every((r) => r.query.fieldSelector === "metadata.name=cosign-key")).toBe(true);
  });
});
