// The e2e test bed itself, on a real containerd 2.1.9 + runc: the bindir verifier contract
// through CRI PullImage, kubelet-like pods and containers, the images/events gRPC subsets,
// restart, and a stop() that leaves nothing behind.
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { credentials, Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventsClient } from "../src/gen/containerd/events.js";
import { type Image as CtrImage, ImageCreate, ImagesClient } from "../src/gen/containerd/images.js";
import type { Envelope } from "../src/gen/containerd/types/event.js";
import { ContainerState } from "../src/gen/cri.js";
import { Any } from "../src/gen/google/protobuf/any.js";
import { crane, type PushedImage, pushBusyboxImage } from "../test/support/images.js";
import { waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { type Containerd, mountsUnder, processesOf, startContainerd } from "./lib/containerd.js";
import { CriError } from "./lib/cri.js";

let registry: LocalRegistry;
let ctrd: Containerd;
let app: PushedImage;
let denied: PushedImage;
let stopped = false;
let registryDir: string | undefined;

function writeScript(file: string, body: string): void {
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
}

/** containerd's OCI spec annotations for a container (what NRI and the shim see). */
function specAnnotations(id: string): Record<string, string> {
  const info = JSON.parse(ctrd.ctr(["-n", "k8s.io", "containers", "info", id])) as {
    Spec: { annotations?: Record<string, string> };
  };
  return info.Spec.annotations ?? {};
}

beforeAll(async () => {
  registryDir = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-registry-"));
  registry = await startRegistry(registryDir);
  app = pushBusyboxImage(registry.host, "test/app", "v1", {
    cmd: ["/bin/sh", "-c", "echo hello from the test bed; sleep 3600"],
  });
  denied = pushBusyboxImage(registry.host, "test/denied", "v1", { marker: "denied" });
  ctrd = await startContainerd();
});

afterAll(async () => {
  if (ctrd && !stopped) await ctrd.stop();
  await registry?.stop();
  if (registryDir) rmSync(registryDir, { recursive: true, force: true });
});

describe("containerd test bed", () => {
  it("answers CRI Version as containerd 2.1.9 with the pinned sandbox image present", async () => {
    const v = await ctrd.cri.version();
    expect(v).toMatchObject({ runtimeName: "containerd", runtimeApiVersion: "v1" });
    expect(v.runtimeVersion).toMatch(/^2\.1\.9/);
    const pause = await ctrd.cri.imageStatus("localhost/tollgate/pause:1");
    expect(pause?.repoTags).toContain("localhost/tollgate/pause:1");
  });

  it("(a) runs bindir verifiers on CRI PullImage with -name/-digest and the descriptor on stdin; a denial blocks the pull with its stdout", async () => {
    const record = path.join(ctrd.dir, "verifier-calls");
    writeScript(
      path.join(ctrd.binDir, "10-record"),
      `n=$(date +%s%N)\nprintf '%s\\n' "$@" > ${record}.$n.args\ncat > ${record}.$n.stdin\necho "recorded"\nexit 0`,
    );
    writeScript(
      path.join(ctrd.binDir, "20-deny"),
      `case "$*" in\n  *"/test/denied"*) echo "tollgate-test: $2 is not signed"; exit 3;;\nesac\nexit 0`,
    );

    const ref = await ctrd.cri.pullImage(app.ref, { podNamespace: "team-a" });
    expect(ref).toMatch(/^sha256:[0-9a-f]{64}$/);
    const calls = readdirSync(ctrd.dir).filter((f) => f.startsWith("verifier-calls.") && f.endsWith(".args"));
    expect(calls).toHaveLength(1);
    const args = readFileSync(path.join(ctrd.dir, calls[0]!), "utf8").trim().split("\n");
    expect(args).toEqual([
      "-name",
      app.ref,
      "-digest",
      app.digest,
      "-stdin-media-type",
      "application/vnd.oci.descriptor.v1+json",
    ]);
    const stdin = readFileSync(path.join(ctrd.dir, calls[0]!.replace(/\.args$/, ".stdin")), "utf8");
    expect(stdin.endsWith("\n")).toBe(true);
    const desc = JSON.parse(stdin) as { mediaType: string; digest: string; size: number };
    expect(desc.digest).toBe(app.digest);
    expect(desc.mediaType).toMatch(/manifest/);
    expect(desc.size).toBeGreaterThan(0);

    const err = await ctrd.cri.pullImage(denied.ref).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CriError);
    const msg = (err as CriError).message;
    expect(msg).toContain(`image verifier bindir blocked pull of ${denied.ref} with digest ${denied.digest}`);
    expect(msg).toContain("verifier 20-deny rejected image (exit code 3)");
    expect(msg).toContain(`tollgate-test: ${denied.ref} is not signed`);
    expect(await ctrd.cri.imageStatus(denied.ref)).toBeUndefined();
  });

  it("(b) runs a pod with namespace and labels and reads its container's log line back", async () => {
    const pod = await ctrd.cri.runPodSandbox({
      name: "web",
      namespace: "team-b",
      labels: { app: "web", "io.kubernetes.pod.namespace": "team-b" },
      annotations: { note: "testbed" },
    });
    const listed = (await ctrd.cri.listPodSandbox()).find((p) => p.id === pod.id);
    expect(listed?.metadata).toMatchObject({ name: "web", namespace: "team-b" });
    expect(listed?.labels).toMatchObject({ app: "web" });

    const id = await ctrd.cri.createContainer(pod, { name: "main", image: app.ref });
    await ctrd.cri.startContainer(id);
    const log = await ctrd.cri.waitForLog(id, "hello from the test bed");
    expect(log).toBe("hello from the test bed\n");
    const st = await ctrd.cri.containerStatus(id);
    expect(st.state).toBe(ContainerState.CONTAINER_RUNNING);
    expect(st.metadata?.name).toBe("main");
    const ann = specAnnotations(id);
    expect(ann["io.kubernetes.cri.sandbox-namespace"]).toBe("team-b");
    expect(ann["io.kubernetes.cri.sandbox-name"]).toBe("web");
    await ctrd.cri.stopAndRemovePod(pod.id);
    expect((await ctrd.cri.listPodSandbox()).some((p) => p.id === pod.id)).toBe(false);
  });

  it("(c) pulls by name and creates with the image id plus user_specified_image = name", async () => {
    // A second tag with the same config digest: created from the id alone, containerd would
    // name the image by its first sorted reference (…/test/app:v1), not the one asked for.
    const zzz = `${registry.host}/test/zzz:v1`;
    crane(["copy", "--insecure", app.ref, zzz]);
    const idApp = await ctrd.cri.pullImage(app.ref);
    const idZzz = await ctrd.cri.pullImage(zzz);
    expect(idZzz).toBe(idApp);

    const pod = await ctrd.cri.runPodSandbox({ name: "named", namespace: "team-c" });
    const id = await ctrd.cri.createContainer(pod, { name: "c", image: zzz });
    const st = await ctrd.cri.containerStatus(id);
    // CRI reports the image record (repo@top-level digest), not the name asked for …
    expect(st.imageRef.endsWith(`@${app.digest}`)).toBe(true);
    // … and the create carried the user's name, which is what NRI sees as image-name.
    expect(specAnnotations(id)["io.kubernetes.cri.image-name"]).toBe(zzz);
    await ctrd.cri.stopAndRemovePod(pod.id);
  });

  it("exposes the images and events APIs through the generated containerd clients", async () => {
    const target = `unix://${ctrd.address}`;
    const md = new Metadata();
    md.set("containerd-namespace", "k8s.io");
    const images = new ImagesClient(target, credentials.createInsecure());
    const events = new EventsClient(target, credentials.createInsecure());
    try {
      const got = await new Promise<CtrImage | undefined>((resolve, reject) =>
        images.get({ name: app.ref }, md, (e, r) => (e ? reject(e) : resolve(r.image))),
      );
      // The top-level descriptor: the digest the verifier saw (protocols.md §3.2).
      expect(got?.target?.digest).toBe(app.digest);
      const missing = await new Promise<unknown>((resolve) =>
        images.get({ name: `${registry.host}/nope:v1` }, md, (e) => resolve(e)),
      );
      expect(missing).toMatchObject({ code: 5 });

      const seen: Array<{ topic: string; name: string }> = [];
      const stream = events.subscribe({ filters: ['topic~="/images/"'] }, md);
      stream.on("data", (env: Envelope) => {
        if (env.event && (env.topic === "/images/create" || env.topic === "/images/tollgate-ready")) {
          seen.push({ topic: env.topic, name: ImageCreate.decode(env.event.value).name });
        }
      });
      stream.on("error", () => {});
      // Handshake instead of a sleep: publish our own event until the subscription delivers it.
      const ready = Any.fromPartial({
        typeUrl: "containerd.services.images.v1.ImageCreate",
        value: Buffer.from(ImageCreate.encode({ name: "ready", labels: {} }).finish()),
      });
      await waitFor(
        "events subscription",
        async () => {
          await new Promise<void>((resolve, reject) =>
            events.publish({ topic: "/images/tollgate-ready", event: ready }, md, (e) =>
              e ? reject(e) : resolve(),
            ),
          );
          return seen.some((s) => s.topic === "/images/tollgate-ready");
        },
        15_000,
      );
      const other = pushBusyboxImage(registry.host, "test/events", "v1", { marker: "events" });
      await ctrd.cri.pullImage(other.ref);
      await waitFor("ImageCreate event", () => seen.some((s) => s.name === other.ref), 15_000);
      stream.cancel();
    } finally {
      images.close();
      events.close();
    }
  });

  it("(d) keeps containers across restart(), then stop() leaves no process, mount or socket behind", async () => {
    const pod = await ctrd.cri.runPodSandbox({ name: "survivor", namespace: "team-d" });
    const id = await ctrd.cri.createContainer(pod, { name: "s", image: app.ref });
    await ctrd.cri.startContainer(id);
    await ctrd.cri.waitForLog(id, "hello from the test bed");
    const oldPid = ctrd.pid;
    await ctrd.restart();
    expect(ctrd.pid).not.toBe(oldPid);
    expect((await ctrd.cri.containerStatus(id)).state).toBe(ContainerState.CONTAINER_RUNNING);

    // Left running on purpose: stop() must take down pods, shims and containers itself.
    const { dir, address } = ctrd;
    const pid = ctrd.pid;
    expect(processesOf(address, pid).length).toBeGreaterThan(2);
    expect(mountsUnder(dir).length).toBeGreaterThan(0);
    stopped = true;
    await ctrd.stop();
    expect(processesOf(address, pid)).toEqual([]);
    expect(mountsUnder(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    const shimSockets = existsSync("/run/containerd/s") ? readdirSync("/run/containerd/s") : [];
    for (const podId of [pod.id]) {
      for (const s of [path.join(address, "k8s.io", podId), path.join(address, "k8s.io", podId, "debug")]) {
        expect(shimSockets).not.toContain(createHash("sha256").update(s).digest("hex"));
      }
    }
  });

  it("(e) stop() also cleans up after a containerd that died with pods running", async () => {
    const c2 = await startContainerd();
    try {
      const pod = await c2.cri.runPodSandbox({ name: "orphan", namespace: "team-e" });
      const id = await c2.cri.createContainer(pod, { name: "o", image: app.ref });
      await c2.cri.startContainer(id);
      await c2.cri.waitForLog(id, "hello from the test bed");
    } catch (e) {
      await c2.stop();
      throw e;
    }
    const { dir, address, pid } = c2;
    process.kill(pid, "SIGKILL");
    await waitFor("containerd to die", () => processesOf(address).every((p) => p !== pid));
    // Shims and containers outlive it; stop() must find and remove them by their -address.
    expect(processesOf(address).length).toBeGreaterThan(0);
    await c2.stop();
    expect(processesOf(address, pid)).toEqual([]);
    expect(mountsUnder(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });
});
