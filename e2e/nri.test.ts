// The NRI plugin (src/nri-plugin) on a real containerd 2.1.9: registration, Synchronize,
// CreateContainer as CRI drives it, denial by status, replies and requests that span many
// 4096-byte mux frames, reconnect across a containerd restart, and a pre-launched plugin.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContainerState } from "../src/gen/cri.js";
import { ContainerAdjustment, CreateContainerResponse } from "../src/gen/nri.js";
import {
  type Container,
  type ContainerIdentity,
  NriPlugin,
  type PodIdentity,
  type PodSandbox,
  TtrpcStatusError,
} from "../src/nri-plugin/index.js";
import { type PushedImage, pushBusyboxImage } from "../test/support/images.js";
import { waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { repoRoot } from "../test/support/tools.js";
import { type Containerd, startContainerd } from "./lib/containerd.js";
import { CriError, type Pod } from "./lib/cri.js";

const IMAGE_NAME = "io.kubernetes.cri.image-name";
const BIG_ADJUST_LABEL = "e2e.tollgate.dev/big-adjust";

type Seen =
  | { kind: "synchronize"; pods: PodSandbox[]; containers: Container[] }
  | { kind: "create"; pod: PodIdentity; container: ContainerIdentity }
  | { kind: "state"; state: string; detail?: string };

/** Records everything one plugin instance sees, in order. */
class Recorder {
  readonly seen: Seen[] = [];
  readonly logs: string[] = [];
  count(kind: Seen["kind"], pred: (s: Seen) => boolean = () => true): number {
    return this.seen.filter((s) => s.kind === kind && pred(s)).length;
  }
  registrations(): number {
    return this.count("state", (s) => s.kind === "state" && s.state === "registered");
  }
  creates(): Array<{ pod: PodIdentity; container: ContainerIdentity; at: number }> {
    return this.seen.flatMap((s, at) =>
      s.kind === "create" ? [{ pod: s.pod, container: s.container, at }] : [],
    );
  }
  syncs(): Array<{ pods: PodSandbox[]; containers: Container[]; at: number }> {
    return this.seen.flatMap((s, at) =>
      s.kind === "synchronize" ? [{ pods: s.pods, containers: s.containers, at }] : [],
    );
  }
  logger() {
    const put = (lvl: string) => (o: object, msg?: string) => {
      this.logs.push(`${lvl} ${msg ?? ""} ${JSON.stringify(o)}`);
    };
    return { info: put("info"), warn: put("warn"), error: put("error"), debug: () => {} };
  }
}

let registry: LocalRegistry;
let registryDir: string;
let ctrd: Containerd;
let app: PushedImage;
let blocked: PushedImage;
let rec: Recorder;
let plugin: NriPlugin;
let prelaunchedEvents: string | undefined;

function bigAnnotations(prefix: string, count: number, valueBytes: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    // Distinct, position-dependent content so a lost or shifted chunk cannot compare equal.
    const seed = `${prefix}-${i}-`;
    out[`e2e.tollgate.dev/${prefix}-${i}`] = seed
      .repeat(Math.ceil(valueBytes / seed.length))
      .slice(0, valueBytes);
  }
  return out;
}

const bigAdjust = bigAnnotations("adjust", 200, 200); // ~45 KB reply: > 10 mux frames

function gate(pod: PodIdentity, container: ContainerIdentity): Partial<CreateContainerResponse> | undefined {
  const image = container.annotations[IMAGE_NAME] ?? "";
  if (image.startsWith(`${blocked.repo}:`)) {
    throw new TtrpcStatusError(7, `tollgate-e2e: ${image} denied for namespace ${pod.namespace}`);
  }
  if (container.labels[BIG_ADJUST_LABEL]) {
    return { adjust: ContainerAdjustment.fromPartial({ annotations: bigAdjust }) };
  }
  return undefined;
}

function newPlugin(r: Recorder, name: string, index: string): NriPlugin {
  return new NriPlugin(
    {
      name,
      index,
      socketPath: ctrd.nriSocket,
      events: ["CreateContainer"],
      reconnect: { initialMs: 100, maxMs: 1000 },
      logger: r.logger(),
    },
    {
      synchronize(pods, containers) {
        r.seen.push({ kind: "synchronize", pods, containers });
        return [];
      },
      createContainer(pod, container) {
        r.seen.push({ kind: "create", pod, container });
        return gate(pod, container);
      },
      onStateChange(state, detail) {
        r.seen.push({ kind: "state", state, detail });
      },
    },
  );
}

/** containerd's OCI spec annotations for a container. */
function specAnnotations(id: string): Record<string, string> {
  const info = JSON.parse(ctrd.ctr(["-n", "k8s.io", "containers", "info", id])) as {
    Spec: { annotations?: Record<string, string> };
  };
  return info.Spec.annotations ?? {};
}

async function runContainer(pod: Pod, name: string, image: string, labels: Record<string, string> = {}) {
  const id = await ctrd.cri.createContainer(pod, { name, image, labels });
  await ctrd.cri.startContainer(id);
  return id;
}

beforeAll(async () => {
  registryDir = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-registry-"));
  registry = await startRegistry(registryDir);
  app = pushBusyboxImage(registry.host, "test/app", "v1", {
    cmd: ["/bin/sh", "-c", "echo hello from nri e2e; sleep 3600"],
  });
  blocked = pushBusyboxImage(registry.host, "test/blocked", "v1", { marker: "blocked" });
  ctrd = await startContainerd({ nriRequestTimeout: "2s", nriRegistrationTimeout: "5s" });
  rec = new Recorder();
  plugin = newPlugin(rec, "e2e-gate", "10");
});

afterAll(async () => {
  // Read before stop(): the events file lives in containerd's dir, which stop() removes.
  const prelaunchedPids = prelaunchedEvents
    ? readFileSync(prelaunchedEvents, "utf8")
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { pid: number }).pid)
    : [];
  await plugin?.stop();
  await ctrd?.stop();
  await registry?.stop();
  if (registryDir) rmSync(registryDir, { recursive: true, force: true });
  // The pre-launched plugin must go away with its containerd (socket closed → it exits).
  await waitFor("pre-launched plugin to exit", () =>
    prelaunchedPids.every((pid) => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }),
  );
});

describe("NRI plugin on a real containerd", () => {
  it("registers, gets Configure and Synchronize, then a CreateContainer for a CRI container with namespace, pod name and image name", async () => {
    await plugin.start();
    expect(plugin.state).toBe("registered");
    expect(plugin.configureInfo).toMatchObject({ runtimeName: "containerd", requestTimeoutMs: 2000 });
    expect(plugin.configureInfo?.runtimeVersion).toMatch(/^2\.1\.9/);
    expect(rec.syncs()).toHaveLength(1);

    const pod = await ctrd.cri.runPodSandbox({ name: "web", namespace: "tenant-a", labels: { app: "web" } });
    const id = await runContainer(pod, "main", app.ref);
    expect(await ctrd.cri.waitForLog(id, "hello from nri e2e")).toContain("hello from nri e2e");

    const creates = rec.creates();
    expect(creates).toHaveLength(1);
    const c = creates[0]!;
    expect(c.at).toBeGreaterThan(rec.syncs()[0]!.at);
    expect(c.pod).toMatchObject({ id: pod.id, name: "web", namespace: "tenant-a" });
    expect(c.pod.labels).toMatchObject({ app: "web" });
    expect(c.container).toMatchObject({ id, podSandboxId: pod.id, name: "main" });
    expect(c.container.annotations[IMAGE_NAME]).toBe(app.ref);
    expect(c.container.annotations["io.kubernetes.cri.sandbox-namespace"]).toBe("tenant-a");
  });

  it("a CreateContainer answered with status 7 fails in CRI with the plugin's message; an allowed one runs", async () => {
    const before = rec.registrations();
    const pod = await ctrd.cri.runPodSandbox({ name: "mixed", namespace: "tenant-b" });
    const err = await ctrd.cri.createContainer(pod, { name: "bad", image: blocked.ref }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CriError);
    expect((err as CriError).code).toBe(7);
    expect((err as CriError).message).toContain(
      `failed to get NRI adjustment for container: rpc error: code = PermissionDenied desc = tollgate-e2e: ${blocked.ref} denied for namespace tenant-b`,
    );
    expect((await ctrd.cri.listContainers(pod.id)).map((c) => c.metadata?.name)).not.toContain("bad");

    // The plugin stays connected (a status is an answer, not a failure) and allows the next one.
    const id = await runContainer(pod, "good", app.ref);
    expect(await ctrd.cri.waitForLog(id, "hello from nri e2e")).toContain("hello from nri e2e");
    expect(plugin.state).toBe("registered");
    expect(rec.registrations()).toBe(before);
    expect(rec.creates().map((c) => c.container.name)).toEqual(["main", "bad", "good"]);
  });

  it("a CreateContainer reply far larger than 4096 bytes is chunked so containerd applies it and keeps the plugin", async () => {
    const before = rec.registrations();
    const pod = await ctrd.cri.runPodSandbox({ name: "adjusted", namespace: "tenant-c" });
    const id = await runContainer(pod, "big", app.ref, { [BIG_ADJUST_LABEL]: "yes" });
    await ctrd.cri.waitForLog(id, "hello from nri e2e");
    const ann = specAnnotations(id);
    for (const [k, v] of Object.entries(bigAdjust)) expect(ann[k], k).toBe(v);
    const replyBytes = CreateContainerResponse.encode(
      CreateContainerResponse.fromPartial({
        adjust: ContainerAdjustment.fromPartial({ annotations: bigAdjust }),
      }),
    ).finish().length;
    expect(replyBytes).toBeGreaterThan(10 * 4096);
    // Had a frame been oversized, containerd would have dropped us (fail-open, no annotations).
    const next = await runContainer(pod, "after", app.ref);
    await ctrd.cri.waitForLog(next, "hello from nri e2e");
    expect(rec.creates().at(-1)?.container.id).toBe(next);
    expect(plugin.state).toBe("registered");
    expect(rec.registrations()).toBe(before);
  });

  it("receives a Synchronize of hundreds of KB (many mux frames) intact", async () => {
    // Size, not count, is what makes the request span many frames: 16 pods × 20 KB of
    // annotations ≈ 330 KB ≈ 80 mux frames (each sandbox costs ~1 s to create and remove here).
    const N = 16;
    const podAnnotations = (i: number) => bigAnnotations(`sync${i}`, 5, 4000);
    const specs = Array.from({ length: N }, (_, i) => ({
      name: `bulk-${i}`,
      namespace: `bulk-ns-${i % 7}`,
      labels: { bulk: "yes", index: String(i) },
      annotations: podAnnotations(i),
    }));
    const created: Pod[] = [];
    for (let i = 0; i < specs.length; i += 4) {
      created.push(...(await Promise.all(specs.slice(i, i + 4).map((s) => ctrd.cri.runPodSandbox(s)))));
    }

    const r2 = new Recorder();
    const p2 = newPlugin(r2, "e2e-sync", "20");
    try {
      await p2.start();
      const [sync] = r2.syncs();
      expect(sync).toBeDefined();
      const byId = new Map(sync!.pods.map((p) => [p.id, p]));
      for (const [i, pod] of created.entries()) {
        const got = byId.get(pod.id);
        expect(got, `pod ${i}`).toBeDefined();
        expect(got!.name).toBe(`bulk-${i}`);
        expect(got!.namespace).toBe(`bulk-ns-${i % 7}`);
        for (const [k, v] of Object.entries(podAnnotations(i))) expect(got!.annotations[k]).toBe(v);
      }
      // Earlier pods and their running containers are in it too.
      expect(sync!.pods.some((p) => p.name === "web" && p.namespace === "tenant-a")).toBe(true);
      expect(sync!.containers.some((c) => c.name === "main" && c.annotations[IMAGE_NAME] === app.ref)).toBe(
        true,
      );
      const bytes = JSON.stringify(sync!.pods).length;
      expect(bytes).toBeGreaterThan(300 * 1024);

      // Both plugins now see creates, in index order, and the first one is still registered.
      const pod = await ctrd.cri.runPodSandbox({ name: "two-plugins", namespace: "tenant-d" });
      const id = await runContainer(pod, "c", app.ref);
      expect(r2.creates().map((c) => c.container.id)).toEqual([id]);
      expect(rec.creates().at(-1)?.container.id).toBe(id);
      expect(plugin.state).toBe("registered");
    } finally {
      await p2.stop();
    }
    await Promise.all(created.map((pod) => ctrd.cri.stopAndRemovePod(pod.id)));
  });

  it("reconnects after containerd restarts and sees the next CreateContainer", async () => {
    const regs = rec.registrations();
    const syncs = rec.syncs().length;
    const running = (await ctrd.cri.listContainers()).filter(
      (c) => c.state === ContainerState.CONTAINER_RUNNING,
    );
    expect(running.length).toBeGreaterThan(0);

    await ctrd.restart();
    await waitFor("plugin to re-register", () => rec.registrations() === regs + 1, 30_000);
    expect(rec.count("state", (s) => s.kind === "state" && s.state === "disconnected")).toBeGreaterThan(0);
    expect(plugin.state).toBe("registered");
    // The new connection's Synchronize lists the containers that survived the restart.
    expect(rec.syncs()).toHaveLength(syncs + 1);
    const resynced = new Set(
      rec
        .syncs()
        .at(-1)!
        .containers.map((c) => c.id),
    );
    for (const c of running) expect(resynced.has(c.id), c.metadata?.name).toBe(true);

    const pod = await ctrd.cri.runPodSandbox({ name: "after-restart", namespace: "tenant-e" });
    const err = await ctrd.cri.createContainer(pod, { name: "bad", image: blocked.ref }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as CriError).message).toContain("code = PermissionDenied desc = tollgate-e2e:");
    const id = await runContainer(pod, "ok", app.ref);
    await ctrd.cri.waitForLog(id, "hello from nri e2e");
    expect(rec.creates().at(-1)).toMatchObject({
      pod: { namespace: "tenant-e", name: "after-restart" },
      container: { id, name: "ok" },
    });
  });

  it("runs as a pre-launched plugin from plugin_path with containerd's identity and config", async () => {
    // containerd starts it with only NRI_* in the environment: a wrapper with absolute paths.
    const work = path.join(ctrd.dir, "prelaunched");
    mkdirSync(work, { recursive: true });
    const bundle = path.join(work, "plugin.mjs");
    await build({
      entryPoints: [path.join(repoRoot, "e2e/lib/prelaunched-plugin.ts")],
      outfile: bundle,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node24",
      logLevel: "warning",
      banner: {
        js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
      },
    });
    prelaunchedEvents = path.join(work, "events.jsonl");
    const pluginDir = path.join(ctrd.dir, "nri", "plugins");
    const confDir = path.join(ctrd.dir, "nri", "conf.d");
    const wrapper = path.join(pluginDir, "30-prelaunched");
    writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} ${bundle} ${prelaunchedEvents}\n`, {
      mode: 0o755,
    });
    writeFileSync(path.join(confDir, "30-prelaunched.conf"), "mode: e2e\n");

    await ctrd.restart(); // plugin_path is scanned at start
    const events = () =>
      existsSync(prelaunchedEvents!)
        ? readFileSync(prelaunchedEvents!, "utf8")
            .trim()
            .split("\n")
            .map((l) => JSON.parse(l) as Record<string, unknown>)
        : [];
    await waitFor("pre-launched plugin to register", () =>
      events().some((e) => e.kind === "state" && e.state === "registered"),
    );
    expect(events().find((e) => e.kind === "started")).toMatchObject({
      env: { name: "prelaunched", idx: "30", socket: "3", path: null },
    });
    expect(events().find((e) => e.kind === "configure")).toMatchObject({ config: "mode: e2e\n" });
    await waitFor("external plugin to re-register too", () => plugin.state === "registered", 30_000);

    const pod = await ctrd.cri.runPodSandbox({ name: "pre", namespace: "tenant-f" });
    const id = await runContainer(pod, "c", app.ref);
    await ctrd.cri.waitForLog(id, "hello from nri e2e");
    expect(events().filter((e) => e.kind === "create")).toEqual([
      expect.objectContaining({ namespace: "tenant-f", pod: "pre", container: "c", image: app.ref }),
    ]);
    expect(specAnnotations(id)["tollgate.test/prelaunched"]).toBe("seen");
  });
});
