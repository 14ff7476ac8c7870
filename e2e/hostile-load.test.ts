// 50 pods pointing at a hostile registry, on a real containerd 2.1.9 with the agent on NRI.
//
// The registry answers every subject's referrers with 64 signature candidates, each a
// manifest of (almost) the 4 MiB cap with a correct digest, trickled slowly: the most bytes
// and the most time a registry can make one verification hold. Unbounded, 50 verifications
// would hold 50 × 64 × 4 MiB. The test asserts what an operator needs: every create is
// answered by the agent inside containerd's deadline (failure policy Closed: denied, never
// the fail-open "closing plugin"), the agent's RSS stays inside the DaemonSet's memory limit,
// the concurrency bound holds, and the agent process does not restart.
import { createHash, generateKeyPairSync } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { type Daemon, waitFor } from "../test/support/procs.js";
import { repoRoot } from "../test/support/tools.js";
import { agentStatus, startAgentProcess, startAgentNode } from "./lib/agent-node.js";
import type { Containerd } from "./lib/containerd.js";
import { CriError, type Pod } from "./lib/cri.js";
import { buildBusyboxArchiveSet, OCI_INDEX, OCI_MANIFEST } from "./lib/images.js";

const PODS = 50;
// containerd's default plugin timeout is 2 s with a 1 s create budget (fraction 0.5). This
// test keeps the 1 s budget but gives containerd's deadline 3 s of margin (4 s, fraction
// 0.25): the shared 2-core CI machine runs other suites at once, and a starved process
// there misses a 1 s margin whatever it does (seen: load average 20). The assertion is the
// same: every create answered by the agent before containerd's deadline.
const NRI_TIMEOUT_MS = 4000;
const CANDIDATES = 64;
const MANIFEST_CAP = 4 * 1024 * 1024;
const BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json";
const EMPTY = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

interface Hostile {
  host: string;
  manifestGets: number;
  bytesServed: number;
  close(): Promise<void>;
}

/** Max-size, digest-correct signature manifests for any subject, trickled 128 KiB / 50 ms. */
async function startHostileRegistry(): Promise<Hostile> {
  // Constant prefix, varying suffix: one 4 MiB hash state, copied per manifest.
  const head = `{"annotations":{"pad":"`;
  const tail =
    `"},"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","artifactType":"${BUNDLE}",` +
    `"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"${EMPTY}","size":2},` +
    `"layers":[{"mediaType":"${BUNDLE}","digest":"${EMPTY}","size":2}],"subject":{"mediaType":"${OCI_MANIFEST}","digest":"`;
  const prefix = Buffer.from(head + "x".repeat(MANIFEST_CAP - 1024 - head.length - tail.length) + tail);
  const prefixHash = createHash("sha256").update(prefix);
  const byDigest = new Map<string, Buffer>(); // digest → suffix
  const st = { manifestGets: 0, bytesServed: 0 };
  const sockets = new Set<import("node:net").Socket>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const json = (code: number, body: unknown, type = "application/json") => {
      const b = Buffer.from(JSON.stringify(body));
      res.writeHead(code, { "content-type": type, "content-length": b.length });
      res.end(req.method === "HEAD" ? undefined : b);
    };
    if (url.pathname === "/v2/" || url.pathname === "/v2") return json(200, {});
    const ref = /^\/v2\/(.+)\/referrers\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (ref) {
      const subject = ref[2]!;
      const manifests = Array.from({ length: CANDIDATES }, (_, i) => {
        const suffix = Buffer.from(`${subject}","size":1000},"n":${i}}`);
        const digest = `sha256:${prefixHash.copy().update(suffix).digest("hex")}`;
        byDigest.set(digest, suffix);
        return { mediaType: OCI_MANIFEST, artifactType: BUNDLE, digest, size: prefix.length + suffix.length };
      });
      return json(200, { schemaVersion: 2, mediaType: OCI_INDEX, manifests }, OCI_INDEX);
    }
    const man = /^\/v2\/(.+)\/manifests\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    const suffix = man ? byDigest.get(man[2]!) : undefined;
    if (man && suffix) {
      st.manifestGets++;
      const body = Buffer.concat([prefix, suffix]);
      res.writeHead(200, {
        "content-type": OCI_MANIFEST,
        "content-length": body.length,
        "docker-content-digest": man[2]!,
      });
      if (req.method === "HEAD") return res.end();
      let off = 0;
      const step = () => {
        if (res.destroyed) return;
        const chunk = body.subarray(off, off + 128 * 1024);
        off += chunk.length;
        st.bytesServed += chunk.length;
        if (off >= body.length) return res.end(chunk);
        res.write(chunk);
        setTimeout(step, 50);
      };
      return step();
    }
    return json(404, { errors: [{ code: "MANIFEST_UNKNOWN", message: "unknown" }] });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    get manifestGets() {
      return st.manifestGets;
    },
    get bytesServed() {
      return st.bytesServed;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** The agent container's memory limit in deploy/base/daemonset.yaml, in bytes. */
function daemonSetMemoryLimit(): number {
  const docs = parseAllDocuments(readFileSync(path.join(repoRoot, "deploy/base/daemonset.yaml"), "utf8"));
  for (const d of docs) {
    const o = d.toJS() as {
      kind?: string;
      spec?: { template?: { spec?: { containers?: Array<Record<string, any>> } } };
    };
    const agent = o?.spec?.template?.spec?.containers?.find((c) => c.name === "agent");
    const lim = agent?.resources?.limits?.memory as string | undefined;
    if (lim) {
      const m = /^(\d+)(Mi|Gi)$/.exec(lim);
      if (!m) throw new Error(`unexpected memory limit ${lim}`);
      return Number(m[1]) * (m[2] === "Gi" ? 1024 : 1) * 1024 * 1024;
    }
  }
  throw new Error("no memory limit for the agent container in deploy/base/daemonset.yaml");
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

function unixGet(socketPath: string, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = http.request({ socketPath, path: p, agent: false, timeout: 5000 }, (res) => {
      let b = "";
      res.on("data", (c) => (b += c));
      res.on("end", () => resolve(b));
    });
    r.on("error", reject);
    r.end();
  });
}

let work: string;
let hostile: Hostile;
let ctrd: Containerd;
let agent: Daemon | undefined;
let apiSocket: string;
let configPath: string;
let images: Array<{ name: string; digest: string; configDigest: string }>;

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-hostile-"));
  hostile = await startHostileRegistry();
  const policyDir = path.join(work, "policies");
  mkdirSync(policyDir);
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pem = publicKey.export({ type: "spki", format: "pem" }).toString();
  writeFileSync(
    path.join(policyDir, "policies.yaml"),
    [
      {
        apiVersion: "tollgate.dev/v1alpha1",
        kind: "ImagePolicy",
        metadata: { name: "strict" },
        spec: { verifiers: [{ name: "cosign", cosign: { keys: [{ name: "k", pem }] } }] },
      },
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "tenant" } },
    ]
      .map((d) => stringify(d))
      .join("---\n"),
  );
  ({ ctrd, configPath, apiSocket } = await startAgentNode({
    work,
    policyDir,
    nriTimeoutMs: NRI_TIMEOUT_MS,
    perVerifierTimeout: "10s",
    defaultPolicy: "strict",
    pullVerifierTimeoutMs: 8000,
    agentConfig: { gate: { budgetFraction: 0.25 } },
  }));
  const set = buildBusyboxArchiveSet(
    Array.from({ length: PODS }, (_, i) => `${hostile.host}/evil/app-${i}:v1`),
    mkdtempSync(path.join(work, "img-")),
  );
  images = set.images;
  ctrd.ctr(["-n", "k8s.io", "images", "import", set.tarball]);
  await waitFor(
    "CRI sees the imported images",
    async () => (await ctrd.cri.imageStatus(images.at(-1)!.name)) !== undefined,
    30_000,
  );
  agent = await startAgentProcess({ ctrd, configPath, apiSocket }, work);
}, 300_000);

afterAll(async () => {
  await agent?.stop();
  await ctrd?.stop();
  await hostile?.close();
  // TOLLGATE_E2E_KEEP_WORK=1 keeps the agent's and containerd's logs for a look afterwards.
  if (work && process.env.TOLLGATE_E2E_KEEP_WORK !== "1") rmSync(work, { recursive: true, force: true });
  else if (work) console.log(`hostile-load: kept ${work}`);
});

describe("hostile registry under load", () => {
  it(`${PODS} pods at a registry serving max-size manifests slowly: every create answered in time, RSS inside the limit, no restart`, async () => {
    const limit = daemonSetMemoryLimit();
    const pid = agent!.pid;
    const drops0 = (readFileSync(ctrd.logFile, "utf8").match(/closing plugin[^\n]*tollgate/g) ?? []).length;
    const baseRss = rssBytes(pid);
    let maxRss = baseRss;
    let maxRunning = 0;
    let refusals = 0;
    let sampling = true;
    let samples = 0;
    const sampler = (async () => {
      while (sampling) {
        maxRss = Math.max(maxRss, rssBytes(pid));
        // /metrics costs the agent a little CPU: every 5th sample only.
        const m = ++samples % 5 === 0 ? await unixGet(apiSocket, "/metrics").catch(() => "") : "";
        const running = /^tollgate_verifications\{state="running"\} (\d+)/m.exec(m);
        if (running) maxRunning = Math.max(maxRunning, Number(running[1]));
        const r = /^tollgate_verification_capacity_refusals (\d+)/m.exec(m);
        if (r) refusals = Math.max(refusals, Number(r[1]));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    const t0 = Date.now();
    const pods: Pod[] = [];
    for (let i = 0; i < PODS; i += 10)
      pods.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(10, PODS - i) }, (_, k) =>
            ctrd.cri.runPodSandbox({ name: `h${i + k}`, namespace: "tenant", uid: `uid-h${i + k}` }),
          ),
        )),
      );
    // kubelet sends them concurrently; containerd serialises them through NRI.
    const results = await Promise.all(
      pods.map((pod, i) =>
        ctrd.cri.createContainer(pod, { name: "app", image: images[i]!.name }).then(
          (id) => ({ id, error: undefined as CriError | undefined }),
          (e: unknown) => {
            if (e instanceof CriError) return { id: undefined, error: e };
            throw e;
          },
        ),
      ),
    );
    const wallMs = Date.now() - t0;
    // Let the background verifications run on against the registry for a while.
    await new Promise((r) => setTimeout(r, 3000));
    sampling = false;
    await sampler;

    const log = readFileSync(agent!.logFile, "utf8");
    const creates = log
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((r) => r.audit === true && r.event === "create" && r.namespace === "tenant");

    const drops = (readFileSync(ctrd.logFile, "utf8").match(/closing plugin[^\n]*tollgate/g) ?? []).length;
    const summary = {
      pods: PODS,
      wallMs,
      created: results.filter((r) => r.id).length,
      drops: drops - drops0,
      decisions: creates.length,
      maxCreateMs: Math.max(...creates.map((c) => c.durationMs as number)),
      baseRssMiB: Math.round((baseRss / 2 ** 20) * 10) / 10,
      maxRssMiB: Math.round((maxRss / 2 ** 20) * 10) / 10,
      limitMiB: limit / 2 ** 20,
      maxRunning,
      refusals,
      manifestGets: hostile.manifestGets,
      bytesServedMiB: Math.round(hostile.bytesServed / 2 ** 20),
    };
    console.log(`hostile-load: ${JSON.stringify(summary)}`);
    if (summary.drops > 0)
      console.log(
        readFileSync(ctrd.logFile, "utf8")
          .split("\n")
          .filter((l) => /nri|plugin/i.test(l))
          .slice(-15)
          .join("\n"),
      );
    // Every create was answered by the agent (failure policy Closed), none fell through.
    for (const r of results) {
      expect(r.id).toBeUndefined();
      expect(r.error?.details).toContain("code = PermissionDenied");
      expect(r.error?.details).toContain("tollgate: denied");
    }
    expect(drops - drops0, "containerd dropped the plugin (fail-open)").toBe(0);
    expect(creates).toHaveLength(PODS);
    for (const c of creates) {
      expect(c.result).toBe("deny");
      expect(c.durationMs as number).toBeLessThan(NRI_TIMEOUT_MS);
    }
    // The registry really was hostile, and the bounds held.
    expect(hostile.manifestGets).toBeGreaterThan(0);
    expect(maxRunning).toBeGreaterThan(0);
    expect(maxRunning).toBeLessThanOrEqual(4); // verification.maxConcurrentPerRegistry
    expect(
      maxRss,
      `agent RSS ${Math.round(maxRss / 2 ** 20)} MiB vs limit ${limit / 2 ** 20} MiB`,
    ).toBeLessThan(limit);
    // No restart: the same process, still serving and registered.
    expect(agent!.child.exitCode).toBeNull();
    expect(rssBytes(pid)).toBeGreaterThan(0);
    const st = await agentStatus(apiSocket);
    expect(st.nri.state).toBe("registered");
    expect(log).not.toMatch(/uncaught exception|unhandled promise rejection/);
  });
});
