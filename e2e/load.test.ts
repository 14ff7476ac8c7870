// Load through the real containerd 2.1.9 with the tollgate agent connected: 200 pods' worth
// of concurrent PullImage and CreateContainer requests over 20 images (14 cosign-signed, 6
// unsigned) and 3 namespaces (two Enforce policies, one Audit). Asserted: nothing is lost
// (every request gets its expected answer), every decision is logged exactly once in the
// agent's JSON audit log, the plugin never misses containerd's deadline (containerd never
// logs "closing plugin"), and the agent's memory stays bounded (RSS before/after, and a
// second identical round does not grow it further).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { AgentStatus } from "../src/agent-api/types.js";
import { agentCrashes, hasExited, recordResult } from "../test/reliability/results.js";
import { type PushedImage, pushBusyboxImage } from "../test/support/images.js";
import { type Daemon, startDaemon, waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../test/support/signing.js";
import { repoRoot } from "../test/support/tools.js";
import { agentStatus, startAgentNode } from "./lib/agent-node.js";
import type { Containerd } from "./lib/containerd.js";
import { CriError, type Pod } from "./lib/cri.js";

const FILE = "e2e/load.test.ts";
const NRI_TIMEOUT_MS = 2000;
const PODS = 200;
const IMAGES = 20;
const SIGNED = 14;
const NAMESPACES = [
  { name: "load-a", policy: "strict", enforce: true },
  { name: "load-b", policy: "strict-b", enforce: true },
  { name: "load-c", policy: "watch", enforce: false },
] as const;
const SANDBOXES_PER_NS = 8;
/** Concurrent PullImage calls in flight (kubelet's maxParallelImagePulls-style bound). */
const PULL_PARALLELISM = 10;
/** Asserted: agent RSS growth over the first round, and over a second identical round. */
const RSS_GROWTH_LIMIT_MB = 256;
const RSS_SECOND_ROUND_LIMIT_MB = 64;

let work: string;
let registry: LocalRegistry;
let ctrd: Containerd;
let agent: Daemon;
let key: CosignKeys;
let apiSocket: string;
const images: Array<PushedImage & { signed: boolean }> = [];

function auditRecords(): Array<Record<string, unknown>> {
  return readFileSync(agent.logFile, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r.audit === true);
}
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}
function getStatus(): Promise<AgentStatus> {
  return agentStatus(apiSocket);
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-load-"));
  registry = await startRegistry(path.join(work, "registry"));
  key = await cosignGenerateKeyPair(path.join(work, "key"));
  for (let i = 0; i < IMAGES; i++) {
    const img = pushBusyboxImage(registry.host, `load/app${i}`, "v1", { marker: `load-${i}` });
    images.push({ ...img, signed: i < SIGNED });
  }
  await Promise.all(images.filter((i) => i.signed).map((i) => cosignSign({ ref: i.pinned, keyDir: key })));

  const policyDir = path.join(work, "policies");
  mkdirSync(policyDir);
  const pol = (name: string, spec: Record<string, unknown> = {}) => ({
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name },
    spec: {
      verifiers: [{ name: "cosign", cosign: { keys: [{ name: "k", pem: key.publicKeyPem }] } }],
      ...spec,
    },
  });
  writeFileSync(
    path.join(policyDir, "policies.yaml"),
    [pol("strict"), pol("strict-b", { failurePolicy: "Closed" }), pol("watch", { mode: "Audit" })]
      .map((d) => stringify(d))
      .join("---\n"),
  );
  writeFileSync(
    path.join(policyDir, "namespaces.yaml"),
    NAMESPACES.map((n) =>
      stringify({
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: n.name, annotations: { "tollgate.dev/policy": n.policy } },
      }),
    ).join("---\n"),
  );
  let configPath: string;
  ({ ctrd, configPath, apiSocket } = await startAgentNode({
    work,
    policyDir,
    nriTimeoutMs: NRI_TIMEOUT_MS,
    perVerifierTimeout: "60s",
    defaultPolicy: "strict",
    pullVerifierTimeoutMs: 50_000,
  }));
  agent = startDaemon(
    "agent",
    process.execPath,
    [path.join(repoRoot, "dist", "tollgate.mjs"), "agent", "--config", configPath],
    { logDir: work },
  );
  await waitFor(
    "agent registered",
    async () => existsSync(apiSocket) && (await getStatus()).nri.state === "registered",
    60_000,
  );
}, 600_000);

afterAll(async () => {
  await agent?.stop();
  await ctrd?.stop();
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Req {
  name: string;
  ns: (typeof NAMESPACES)[number];
  image: PushedImage & { signed: boolean };
  pod: Pod;
}

describe("load through containerd", () => {
  it(`${PODS} pods' worth of concurrent PullImage + CreateContainer over ${IMAGES} images and ${NAMESPACES.length} namespaces`, async () => {
    const rss0 = rssMb(agent.pid);
    const testStart = Date.now();
    // ---- pulls: 200 concurrent PullImage (10 per image) ----------------------------------
    const pullStart = Date.now();
    // kubelet bounds parallel pulls (serializeImagePulls / maxParallelImagePulls); 200 truly
    // simultaneous pulls start 200 verifier processes at once, which 2 cores cannot start
    // inside per_verifier_timeout (they are then denied, fail-closed).
    const pulls: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: PULL_PARALLELISM }, async () => {
        while (next < PODS) {
          const i = next++;
          pulls[i] = await ctrd.cri.pullImage(images[i % IMAGES]!.ref).then(
            () => "ok",
            (e: unknown) => (e instanceof CriError ? `error ${e.details}` : `crash ${String(e)}`),
          );
        }
      }),
    );
    const pullMs = Date.now() - pullStart;
    // An Audit policy is in use, so under any-policy-in-use every pull is admitted; the
    // create-time gate is where the namespaces' policies are enforced.
    expect(
      pulls.filter((p) => p !== "ok"),
      "failed pulls",
    ).toEqual([]);
    const pullRecords = auditRecords().filter((r) => r.event === "pull");

    // ---- creates: 200 concurrent CreateContainer over 24 sandboxes ------------------------
    const pods = new Map<string, Pod[]>();
    for (const ns of NAMESPACES) {
      pods.set(
        ns.name,
        await Promise.all(
          Array.from({ length: SANDBOXES_PER_NS }, (_, j) =>
            ctrd.cri.runPodSandbox({ name: `${ns.name}-${j}`, namespace: ns.name, uid: `${ns.name}-${j}` }),
          ),
        ),
      );
    }
    const round = async (tag: string) => {
      const reqs: Req[] = Array.from({ length: PODS }, (_, i) => {
        const ns = NAMESPACES[i % NAMESPACES.length]!;
        return {
          name: `${tag}-c${i}`,
          ns,
          image: images[(i * 7) % IMAGES]!,
          pod: pods.get(ns.name)![i % SANDBOXES_PER_NS]!,
        };
      });
      const t = Date.now();
      const results = await Promise.all(
        reqs.map((r) =>
          ctrd.cri.createContainer(r.pod, { name: r.name, image: r.image.ref }).then(
            (id) => ({ r, id, error: undefined as string | undefined }),
            (e: unknown) => ({
              r,
              id: undefined,
              error: e instanceof CriError ? e.details : `crash ${String(e)}`,
            }),
          ),
        ),
      );
      return { results, ms: Date.now() - t };
    };
    const first = await round("r1");
    const rss1 = rssMb(agent.pid);
    const second = await round("r2");
    const rss2 = rssMb(agent.pid);

    // ---- nothing lost: every request got the answer its namespace's policy gives ----------
    let wrong = 0;
    let undecided = 0;
    for (const { results } of [first, second]) {
      for (const { r, id, error } of results) {
        const allowed = !r.ns.enforce || r.image.signed;
        if (error?.startsWith("crash") || (!id && !error)) undecided++;
        else if (allowed ? !id : !error?.includes("PermissionDenied")) wrong++;
      }
    }
    // ---- every decision logged exactly once -----------------------------------------------
    const createRecords = auditRecords().filter((r) => r.event === "create");
    const byName = new Map<string, number>();
    for (const rec of createRecords) {
      const n = (rec.container as { name?: string } | undefined)?.name ?? "";
      byName.set(n, (byName.get(n) ?? 0) + 1);
    }
    const names = [...first.results, ...second.results].map((x) => x.r.name);
    const missing = names.filter((n) => !byName.has(n));
    const dup = names.filter((n) => (byName.get(n) ?? 0) > 1);
    const slowDecisions = createRecords.filter((r) => Number(r.durationMs) >= NRI_TIMEOUT_MS).length;
    // ---- no missed deadline: containerd never dropped the plugin ---------------------------
    const drops = (readFileSync(ctrd.logFile, "utf8").match(/closing plugin[^\n]*tollgate/g) ?? []).length;
    const status = await getStatus();
    const crashes = agentCrashes(readFileSync(agent.logFile, "utf8"), testStart, hasExited(agent.child));

    expect(wrong, "wrong answers").toBe(0);
    expect(undecided, "undecided").toBe(0);
    expect(missing, "creates without a decision record").toEqual([]);
    expect(dup, "creates logged more than once").toEqual([]);
    expect(createRecords.length).toBe(2 * PODS);
    expect(pullRecords.length).toBeGreaterThanOrEqual(PODS);
    expect(drops, "containerd closed the plugin").toBe(0);
    expect(slowDecisions).toBe(0);
    expect(status.nri.state).toBe("registered");
    expect(crashes, "agent errors that escaped every handler, internal errors, exits").toBe(0);
    expect(rss1 - rss0).toBeLessThan(RSS_GROWTH_LIMIT_MB);
    expect(rss2 - rss1).toBeLessThan(RSS_SECOND_ROUND_LIMIT_MB);
    recordResult({
      area: "load",
      name: `${PODS} PullImage (${PULL_PARALLELISM} in flight) + 2×${PODS} concurrent CreateContainer (${IMAGES} images, ${NAMESPACES.length} namespaces)`,
      path: "real containerd 2.1.9 (CRI) + agent (NRI + pull API) + pull verifier → docker-registry",
      cases: PODS * 3,
      outcome:
        `pulls: ${pulls.filter((p) => p === "ok").length}/${PODS} admitted in ${(pullMs / 1000).toFixed(1)} s, ${pullRecords.length} pull decisions logged; ` +
        `creates: ${2 * PODS - wrong - undecided}/${2 * PODS} answered as policy says (round 1 ${(first.ms / 1000).toFixed(1)} s, round 2 ${(second.ms / 1000).toFixed(1)} s), ` +
        `${createRecords.length} create decisions logged, ${missing.length} missing, ${dup.length} duplicated, slowest decision ${Math.max(...createRecords.map((r) => Number(r.durationMs)))} ms; ` +
        `agent RSS ${rss0.toFixed(0)} → ${rss1.toFixed(0)} → ${rss2.toFixed(0)} MB (limits +${RSS_GROWTH_LIMIT_MB} / +${RSS_SECOND_ROUND_LIMIT_MB} MB)`,
      crashes,
      missedDeadlines: drops + slowDecisions,
      undecided: undecided + missing.length,
      file: FILE,
    });
  });
});
