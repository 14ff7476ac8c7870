// The tag-move race, reproduced deterministically on a real containerd 2.1.9 and shown closed.
//
// kubelet resolves the image name (ImageStatus → image id), then calls CreateContainer with
// that id. containerd prepares the container's rootfs from the id and only then asks NRI
// plugins. A test NRI plugin ordered before the agent (hold-plugin.ts) holds the victim's
// create inside that window while the test re-pulls the tag to other content, so when the
// agent is asked, the name points at a signed image while containerd is about to start an
// unsigned one. The agent compares containerd's own record — the snapshot prepared for the
// container — with the judged image's layers and denies.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type PushedImage, pushBusyboxImage } from "../test/support/images.js";
import { type Daemon, waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../test/support/signing.js";
import { agentApiGet, startAgentProcess, startAgentNode } from "./lib/agent-node.js";
import type { Containerd } from "./lib/containerd.js";
import { CriError, type Pod } from "./lib/cri.js";
import { HoldPlugin } from "./lib/hold-plugin.js";
import { buildBusyboxArchive } from "./lib/images.js";

const NRI_TIMEOUT_MS = 8000;

let work: string;
let registry: LocalRegistry;
let ctrd: Containerd;
let agent: Daemon | undefined;
let hold: HoldPlugin | undefined;
let key: CosignKeys;
let policyDir: string;
let configPath: string;
let apiSocket: string;
let seq = 0;

function decisions(pred: (r: Record<string, unknown>) => boolean) {
  return readFileSync(agent!.logFile, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r.audit === true && pred(r));
}

function writeYaml(file: string, docs: unknown[]) {
  const tmp = path.join(policyDir, `.${file}.tmp`);
  writeFileSync(tmp, docs.map((d) => stringify(d)).join("---\n"));
  execFileSync("mv", [tmp, path.join(policyDir, file)]);
}

async function newPod(namespace: string): Promise<Pod> {
  seq++;
  return ctrd.cri.runPodSandbox({ name: `p${seq}`, namespace, uid: `uid-${seq}` });
}

/** kubelet's order: ImageStatus(name) → image id, then CreateContainer(id, user_specified_image = name). */
async function create(pod: Pod, image: string): Promise<{ id?: string; error?: CriError }> {
  try {
    return { id: await ctrd.cri.createContainer(pod, { name: `c${++seq}`, image }) };
  } catch (e) {
    if (e instanceof CriError) return { error: e };
    throw e;
  }
}

/** containerd's own view of a snapshot, read with ctr (not with the agent's code). */
function snapshotParent(key: string): string {
  const info = JSON.parse(
    ctrd.ctr(["-n", "k8s.io", "snapshots", "--snapshotter", "overlayfs", "info", key]),
  ) as {
    Parent?: string;
  };
  return info.Parent ?? "";
}

let signed: PushedImage;

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-tagmove-"));
  registry = await startRegistry(path.join(work, "registry"));
  key = await cosignGenerateKeyPair(path.join(work, "key"));
  policyDir = path.join(work, "policies");
  mkdirSync(policyDir);
  writeYaml("policies.yaml", [
    {
      apiVersion: "tollgate.dev/v1alpha1",
      kind: "ImagePolicy",
      metadata: { name: "strict" },
      spec: { verifiers: [{ name: "cosign", cosign: { keys: [{ name: "k", pem: key.publicKeyPem }] } }] },
    },
  ]);
  writeYaml("namespaces.yaml", [{ apiVersion: "v1", kind: "Namespace", metadata: { name: "victim" } }]);
  signed = pushBusyboxImage(registry.host, "race/app", "v1", { marker: "signed" });
  await cosignSign({ ref: signed.pinned, keyDir: key });

  ({ ctrd, configPath, apiSocket } = await startAgentNode({
    work,
    policyDir,
    nriTimeoutMs: NRI_TIMEOUT_MS,
    perVerifierTimeout: "10s",
    defaultPolicy: "strict",
    pullVerifierTimeoutMs: 8000,
  }));
  agent = await startAgentProcess({ ctrd, configPath, apiSocket }, work);
  hold = new HoldPlugin(ctrd.nriSocket, "05");
  await hold.start();
}, 300_000);

afterAll(async () => {
  await hold?.stop().catch(() => {});
  await agent?.stop();
  await ctrd?.stop();
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("tag-move race through containerd (CRI, kubelet's order)", () => {
  it("a create whose tag does not move runs: containerd's rootfs is the judged image", async () => {
    const other = pushBusyboxImage(registry.host, "race/steady", "v1", { marker: "steady" });
    await cosignSign({ ref: other.pinned, keyDir: key });
    await ctrd.cri.pullImage(other.ref);
    const c = await create(await newPod("victim"), other.ref);
    expect(c.error).toBeUndefined();
    const d = decisions((r) => r.event === "create" && r.image === other.ref);
    expect(d).toHaveLength(1);
    expect(d[0]).toMatchObject({ result: "allow", kind: "verified", digest: other.digest });
    expect(d[0]!.notes).toBeUndefined(); // bound by the snapshot, not by the fallback
    // containerd announced the container's snapshot (/snapshot/prepare) before asking NRI:
    // the binding read its parent from that event instead of a Stat round trip.
    const metrics = await agentApiGet(apiSocket, "/metrics");
    expect(metrics).toMatch(/^tollgate_rootfs_lookups_total\{via="event"\} [1-9]/m);
  });

  it("the name moves to a signed image while the unsigned one's create is held: denied, then the retry runs the signed one", async () => {
    // The unsigned content is on the node under the tag (imported: a pull would be refused).
    const unsigned = buildBusyboxArchive({
      name: signed.ref,
      marker: "unsigned",
      dir: mkdtempSync(path.join(work, "img-")),
    });
    ctrd.ctr(["-n", "k8s.io", "images", "import", unsigned.tarball]);
    // CRI learns of an import through containerd's image events, asynchronously.
    await waitFor(
      "CRI sees the imported image under the tag",
      async () => (await ctrd.cri.imageStatus(signed.ref))?.id === unsigned.configDigest,
      15_000,
    );

    const pod = await newPod("victim");
    const h = hold!.arm("victim");
    const creating = create(pod, signed.ref);
    const held = await h.held;
    let released = false;
    try {
      expect(held.imageName).toBe(signed.ref);
      // containerd has prepared the rootfs from the unsigned image before asking NRI.
      const parent = snapshotParent(held.containerId);
      expect(parent).toMatch(/^sha256:[0-9a-f]{64}$/);

      // Inside the window: the tag is pulled again, now to the signed content.
      await ctrd.cri.pullImage(signed.ref);
      const now = await ctrd.cri.imageStatus(signed.ref);
      expect(now?.id).not.toBe(unsigned.configDigest);
      // The race is real: the name now resolves to the signed image, the container's
      // rootfs is still the unsigned one.
      expect(snapshotParent(held.containerId)).toBe(parent);

      h.release();
      released = true;
      const c = await creating;
      expect(c.error?.details).toContain("code = PermissionDenied");
      expect(c.error?.details).toContain(
        `tollgate: denied ${signed.ref} (${signed.digest}) in namespace "victim"`,
      );
      expect(c.error?.details).toContain(`snapshot parent ${parent}`);
      const d = decisions(
        (r) =>
          r.event === "create" &&
          r.container !== undefined &&
          (r.container as { id: string }).id === held.containerId,
      );
      expect(d).toHaveLength(1);
      expect(d[0]).toMatchObject({ result: "deny", kind: "failed", digest: signed.digest });
    } finally {
      if (!released) h.release();
    }

    // kubelet's retry resolves the name again: the signed image, bound, runs.
    const retry = await create(pod, signed.ref);
    expect(retry.error).toBeUndefined();
    await ctrd.cri.startContainer(retry.id!);
    await ctrd.cri.waitForLog(retry.id!, "hello from race/app:v1");
  });
});
