import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import {
  type Container,
  ContainerState,
  Event,
  type PodSandbox,
  SynchronizeRequest,
} from "../../src/gen/nri.js";
import {
  Code,
  type ConfigureInfo,
  type NriEvent,
  NriPlugin,
  type NriPluginOptions,
  type RequestContext,
  TtrpcStatusError,
} from "../../src/nri-plugin/index.js";
import { FakeRuntime } from "./support/fake-runtime.js";
import { socketPair, type TempSocket, tempSocketPath } from "./support/net.js";

const here = dirname(fileURLToPath(import.meta.url));
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function pod(i: number): PodSandbox {
  return {
    id: `pod-${i}`,
    name: `web-${i}`,
    uid: `uid-${i}`,
    namespace: i % 2 ? "tenant-a" : "tenant-b",
    labels: { app: "web", "io.cri-containerd.kind": "sandbox" },
    annotations: { "io.kubernetes.cri.sandbox-name": `web-${i}`, filler: "x".repeat(600) },
    runtimeHandler: "",
    pid: 1000 + i,
    ips: [],
  };
}

function container(i: number, name = `c-${i}`): Container {
  return {
    id: `ctr-${i}`,
    podSandboxId: `pod-${i}`,
    name,
    state: ContainerState.CONTAINER_RUNNING,
    labels: { "io.cri-containerd.kind": "container" },
    annotations: { "io.kubernetes.cri.image-name": `registry.test/app:${i}`, filler: "y".repeat(600) },
    args: ["/bin/sh", "-c", "sleep 1d"],
    env: ["PATH=/bin", `HOSTNAME=web-${i}`],
    mounts: [{ destination: "/proc", type: "proc", source: "proc", options: ["nosuid"] }],
    pid: 2000 + i,
    rlimits: [],
  };
}

async function runtime(
  opts: Parameters<typeof FakeRuntime.listen>[1] = {},
): Promise<{ rt: FakeRuntime; sock: TempSocket }> {
  const sock = tempSocketPath();
  const rt = await FakeRuntime.listen(sock.path, opts);
  cleanups.push(sock.cleanup, () => rt.close());
  return { rt, sock };
}

function plugin(
  opts: Partial<NriPluginOptions> & { socketPath: string },
  handlers: ConstructorParameters<typeof NriPlugin>[1] = {},
) {
  const p = new NriPlugin(
    {
      name: "tollgate",
      index: "10",
      events: ["CreateContainer"],
      env: {},
      reconnect: { initialMs: 20, maxMs: 200 },
      ...opts,
    },
    handlers,
  );
  cleanups.push(() => p.stop());
  return p;
}

describe("NRI plugin lifecycle", () => {
  it("registers, is configured before the register reply, and merges a paged Synchronize of hundreds of KB", async () => {
    const pods = Array.from({ length: 300 }, (_, i) => pod(i));
    const containers = Array.from({ length: 300 }, (_, i) => container(i));
    const totalBytes = SynchronizeRequest.encode({ pods, containers, more: false }).finish().length;
    expect(totalBytes).toBeGreaterThan(400_000);
    const { rt, sock } = await runtime({
      pods,
      containers,
      syncPageSize: 40,
      config: "mode: enforce",
      requestTimeoutMs: 1500,
    });
    const seen: { pods: PodSandbox[]; containers: Container[] }[] = [];
    let configured: ConfigureInfo | undefined;
    const states: string[] = [];
    const p = plugin(
      { socketPath: sock.path, events: ["CreateContainer", "StopContainer", "RemoveContainer"] },
      {
        configure: (info) => {
          configured = info;
        },
        synchronize: (pods, containers) => {
          seen.push({ pods, containers });
          return [{ containerId: "ctr-1", ignoreFailure: true }];
        },
        onStateChange: (s) => states.push(s),
      },
    );
    await p.start();
    const conn = await rt.connection(0);
    await conn.ready;
    expect(p.state).toBe("registered");
    expect(states).toEqual(["connecting", "registered"]);
    expect([conn.name, conn.idx]).toEqual(["tollgate", "10"]);
    // Configure and every Synchronize page were answered while RegisterPlugin was still pending.
    expect(conn.log[0]).toBe("register-request");
    expect(conn.log[1]).toBe("configure");
    expect(conn.log.at(-1)).toBe("register-reply");
    expect(conn.log.filter((l) => l.startsWith("synchronize"))).toHaveLength(15);
    // bit for event N = 1 << (N-1)
    expect(conn.events).toBe((1 << 3) | (1 << 9) | (1 << 10));
    expect(configured).toEqual({
      config: "mode: enforce",
      runtimeName: "containerd",
      runtimeVersion: "2.1.9+unknown",
      registrationTimeoutMs: 5000,
      requestTimeoutMs: 1500,
    });
    expect(p.configureInfo).toEqual(configured);
    expect(p.requestTimeoutMs).toBe(1500);
    // one handler call with every page merged, in order
    expect(seen).toHaveLength(1);
    expect(seen[0]!.pods.map((x) => x.id)).toEqual(pods.map((x) => x.id));
    expect(seen[0]!.containers).toEqual(containers);
    // more=true pages answered more=true with no updates; updates only on the last
    expect(conn.syncReplies.slice(0, -1).every((r) => r.more && r.update.length === 0)).toBe(true);
    expect(conn.syncReplies.at(-1)).toMatchObject({
      more: false,
      update: [{ containerId: "ctr-1", ignoreFailure: true }],
    });
  });

  it("answers CreateContainer: allow with an adjustment, deny with PERMISSION_DENIED, deadline and metadata in ctx", async () => {
    const { rt, sock } = await runtime({ requestTimeoutMs: 1800 });
    const ctxs: RequestContext[] = [];
    const p = plugin(
      { socketPath: sock.path },
      {
        createContainer: (pd, c, ctx) => {
          ctxs.push(ctx);
          if (c.name === "evil")
            throw new TtrpcStatusError(Code.PERMISSION_DENIED, `tollgate: image unsigned in ${pd.namespace}`);
          if (c.name === "plain") return;
          return { adjust: { annotations: { "tollgate.dev/verified": "true" } } };
        },
      },
    );
    await p.start();
    const conn = await rt.connection(0);
    const t0 = Date.now();
    const ok = await conn.createContainer(pod(1), container(1, "good"));
    expect(ok.adjust?.annotations).toEqual({ "tollgate.dev/verified": "true" });
    expect(ok.update).toEqual([]);
    expect(await conn.createContainer(pod(1), container(2, "plain"))).toEqual({ update: [], evict: [] });
    const err = await conn.createContainer(pod(1), container(3, "evil")).catch((e) => e);
    expect(err).toBeInstanceOf(TtrpcStatusError);
    expect([err.code, err.message]).toEqual([7, "tollgate: image unsigned in tenant-a"]);
    // the deadline is containerd's (timeout_nano), not ours
    expect(ctxs[0]!.deadline).toBeGreaterThan(t0 + 1000);
    expect(ctxs[0]!.deadline).toBeLessThanOrEqual(Date.now() + 1800);
    expect(ctxs[0]!.metadata).toEqual({ "containerd-namespace-ttrpc": "k8s.io" });
    expect(ctxs[0]!.signal.aborted).toBe(false);
    // the plugin stays connected after a denial
    expect(p.state).toBe("registered");
    expect((await conn.createContainer(pod(1), container(4, "good"))).adjust).toBeDefined();
  });

  it("a handler that throws a plain error yields UNKNOWN; a subscribed plugin without handler allows", async () => {
    const { rt, sock } = await runtime();
    const p = plugin(
      { socketPath: sock.path },
      { createContainer: async () => Promise.reject(new Error("bug")) },
    );
    await p.start();
    const conn = await rt.connection(0);
    const err = await conn.createContainer(pod(1), container(1)).catch((e) => e);
    expect([err.code, err.message]).toEqual([Code.UNKNOWN, "bug"]);

    const other = await runtime();
    const q = plugin({ socketPath: other.sock.path, index: "20" });
    await q.start();
    const c2 = await other.rt.connection(0);
    expect(await c2.createContainer(pod(1), container(1))).toEqual({ update: [], evict: [] });
  });

  it("delivers subscribed state changes, answers the rest OK, and never fails the RPC for a handler error", async () => {
    const { rt, sock } = await runtime();
    const got: [NriEvent, string | undefined][] = [];
    const events: NriEvent[] = ["CreateContainer", "StopContainer", "RemoveContainer", "UpdateContainer"];
    const p = plugin(
      { socketPath: sock.path, events },
      {
        stateChange: (e, _pod, c) => {
          got.push([e, c?.id]);
          if (e === "RemoveContainer") throw new Error("audit sink down");
        },
      },
    );
    await p.start();
    const conn = await rt.connection(0);
    expect(await conn.plugin.stopContainer({ pod: pod(1), container: container(1) })).toEqual({ update: [] });
    expect(await conn.plugin.updateContainer({ pod: pod(1), container: container(2) })).toEqual({
      update: [],
      evict: [],
    });
    expect(
      await conn.plugin.stateChange({ event: Event.REMOVE_CONTAINER, pod: pod(1), container: container(3) }),
    ).toEqual({});
    // not subscribed: answered, handler not called
    expect(
      await conn.plugin.stateChange({ event: Event.START_CONTAINER, pod: pod(1), container: container(4) }),
    ).toEqual({});
    expect(await conn.plugin.stateChange({ event: 99 as Event })).toEqual({});
    expect(await conn.plugin.shutdown({})).toEqual({});
    expect(got).toEqual([
      ["StopContainer", "ctr-1"],
      ["UpdateContainer", "ctr-2"],
      ["RemoveContainer", "ctr-3"],
    ]);
  });

  it("answers an event before containerd's deadline even when the handler hangs", async () => {
    const { rt, sock } = await runtime({ requestTimeoutMs: 600 });
    let calls = 0;
    const p = plugin(
      { socketPath: sock.path, events: ["CreateContainer", "StopContainer"] },
      {
        stateChange: () => {
          calls++;
          return new Promise<void>(() => {});
        },
      },
    );
    await p.start();
    const conn = await rt.connection(0);
    // the fake's call times out at 600 ms; the plugin must reply before that
    expect(
      await conn.plugin.stopContainer({ pod: pod(1), container: container(1) }, { timeoutMs: 600 }),
    ).toEqual({
      update: [],
    });
    expect(calls).toBe(1);
    expect(p.state).toBe("registered");
  });

  it("sends UpdateContainers to the runtime and returns the failed updates", async () => {
    const { rt, sock } = await runtime();
    const p = plugin({ socketPath: sock.path });
    await expect(p.updateContainers([], [])).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    await p.start();
    const conn = await rt.connection(0);
    const failed = await p.updateContainers(
      [
        { containerId: "ok-1", ignoreFailure: false },
        { containerId: "fail-2", ignoreFailure: false },
      ],
      [{ containerId: "bad", reason: "unsigned" }],
    );
    expect(failed.map((f) => f.containerId)).toEqual(["fail-2"]);
    expect(conn.updateRequests[0]?.evict).toEqual([{ containerId: "bad", reason: "unsigned" }]);
  });

  it("reconnects with back-off after the runtime closes the connection, and after a runtime restart", async () => {
    const { rt, sock } = await runtime();
    const states: string[] = [];
    let syncs = 0;
    const p = plugin(
      { socketPath: sock.path },
      {
        onStateChange: (s) => states.push(s),
        synchronize: () => {
          syncs++;
          return [];
        },
      },
    );
    await p.start();
    (await rt.connection(0)).disconnect();
    const second = await rt.connection(1);
    await second.ready;
    await waitUntil(() => p.state === "registered");
    expect(states).toEqual(["connecting", "registered", "disconnected", "connecting", "registered"]);
    // runtime goes away completely (socket file gone), comes back later on the same path
    await rt.close();
    sock.cleanup();
    await waitUntil(() => states.filter((s) => s === "disconnected").length >= 3);
    const { mkdirSync } = await import("node:fs");
    mkdirSync(sock.dir, { recursive: true });
    const rt2 = await FakeRuntime.listen(sock.path);
    cleanups.push(() => rt2.close());
    await (await rt2.connection(0)).ready;
    await waitUntil(() => p.state === "registered");
    expect(syncs).toBe(3);
    expect((await (await rt2.connection(0)).createContainer(pod(1), container(1))).update).toEqual([]);
  });

  it("start() keeps retrying until the socket exists; stop() ends it and closes the connection", async () => {
    const sock = tempSocketPath();
    cleanups.push(sock.cleanup);
    const p = plugin({ socketPath: sock.path });
    const started = p.start();
    await waitUntil(() => p.state === "disconnected");
    const rt = await FakeRuntime.listen(sock.path);
    cleanups.push(() => rt.close());
    await started;
    const conn = await rt.connection(0);
    await p.stop();
    expect(p.state).toBe("stopped");
    await conn.closed;
    expect(conn.log.at(-1)).toBe("closed");
    await expect(p.start()).rejects.toThrow(/stopped/);
  });

  it("a plugin whose Configure handler fails is dropped by the runtime and tries again", async () => {
    const { rt, sock } = await runtime();
    let n = 0;
    const p = plugin(
      { socketPath: sock.path },
      {
        configure: () => {
          if (n++ === 0) throw new Error("bad config");
        },
      },
    );
    await p.start();
    await expect((await rt.connection(0)).ready).rejects.toMatchObject({
      code: Code.UNKNOWN,
      message: "bad config",
    });
    await (await rt.connection(1)).ready;
    expect(p.state).toBe("registered");
  });

  it("rejects options containerd would refuse", () => {
    const base = { name: "tollgate", index: "10", events: ["CreateContainer"] as NriEvent[], env: {} };
    expect(() => new NriPlugin({ ...base, index: "1" }, {})).toThrow(/two digits/);
    expect(() => new NriPlugin({ ...base, name: "" }, {})).toThrow(/name/);
    expect(() => new NriPlugin({ ...base, events: [] }, {})).toThrow(/at least one event/);
    expect(() => new NriPlugin({ ...base, events: ["Nope" as NriEvent] }, {})).toThrow(/unknown event/);
    expect(() => new NriPlugin({ ...base, env: { NRI_PLUGIN_SOCKET: "x" } }, {})).toThrow(/fd/);
    const pre = new NriPlugin(
      { ...base, env: { NRI_PLUGIN_SOCKET: "3", NRI_PLUGIN_NAME: "n", NRI_PLUGIN_IDX: "05" } },
      {},
    );
    expect(pre.preLaunched).toBe(true);
  });

  it("runs as a pre-launched plugin on fd 3 (env identity) and exits when the runtime closes it", async () => {
    const { a, b } = await socketPair();
    const rt = await FakeRuntime.listen(join(tempSocketPath().dir, "unused.sock"));
    cleanups.push(() => rt.close());
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(here, "support", "prelaunched-child.ts")],
      {
        cwd: join(here, "..", ".."),
        env: { NRI_PLUGIN_SOCKET: "3", NRI_PLUGIN_NAME: "tollgate", NRI_PLUGIN_IDX: "05" },
        stdio: ["ignore", "pipe", "pipe", a],
      },
    );
    a.destroy(); // the child owns its duplicate; ours must not read its bytes
    let out = "";
    child.stdout?.on("data", (d) => (out += d));
    child.stderr?.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    cleanups.push(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    const conn = rt.adopt(b);
    await conn.ready;
    expect([conn.name, conn.idx]).toEqual(["tollgate", "05"]);
    const err = await conn.createContainer(pod(1), container(1, "deny")).catch((e) => e);
    expect([err.code, err.message]).toEqual([7, "denied by pre-launched test plugin"]);
    expect((await conn.createContainer(pod(1), container(2, "ok"))).adjust?.annotations).toEqual({
      prelaunched: "yes",
    });
    conn.disconnect();
    expect(await exited).toBe(0);
    expect(out).toContain("registered");
    expect(out).toContain("stopped: disconnected");
  });
});

async function waitUntil(cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 10));
  }
}
