// Registry faults through the real engine: docker-registry 2.8.3 on loopback behind the
// fault-injecting proxy, an image signed by the real cosign CLI. For every fault the verdict
// follows the failure policy (Closed denies, Open allows, an unsigned image is never let
// through by Closed), every call returns a verdict in bounded time (no hang, no throw), and
// once the fault clears the same digest verifies again within RECOVERY_LIMIT_MS.
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CompiledPolicy, compilePolicy, createEngine } from "../../src/engine/index.js";
import type { Verdict } from "../../src/engine/types.js";
import { type Fault, type FaultProxy, startFaultProxy } from "../support/fault-proxy.js";
import { type PushedImage, pushBusyboxImage } from "../support/images.js";
import { waitFor } from "../support/procs.js";
import { type LocalRegistry, startRegistry } from "../support/registry.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../support/signing.js";
import { recordResult } from "./results.js";

const FILE = path.relative(process.cwd(), import.meta.filename);
/** Client timeouts for the test: a hung or trickling registry costs at most this. */
const TOTAL_MS = 1500;
/** Failed verdicts are cached this long (kubelet retry storms), then re-verified. */
const FAILED_TTL_S = 1;
const NEGATIVE_TTL_S = 2;
/** Asserted: after the fault clears, the same digest is verified again within this. */
const RECOVERY_LIMIT_MS = 10_000;
/** Asserted: a verify call under any fault answers within this. */
const ANSWER_LIMIT_MS = 8_000;

let reg: LocalRegistry;
let proxy: FaultProxy;
let keys: CosignKeys;
let signed: PushedImage;
let unsigned: PushedImage;
let closed: CompiledPolicy;
let open: CompiledPolicy;

const blobPath = (r: { path: string }) => r.path.includes("/blobs/");

const FAULTS: Array<{
  name: string;
  fault: Fault;
  match?: (r: { method: string; path: string }) => boolean;
}> = [
  { name: "registry HTTP 500", fault: { kind: "status", status: 500 } },
  {
    name: "registry HTTP 429 with Retry-After",
    fault: { kind: "status", status: 429, headers: { "retry-after": "2" } },
  },
  {
    name: "registry HTTP 503 on signature blobs only",
    fault: { kind: "status", status: 503 },
    match: blobPath,
  },
  { name: "registry slow body (16 B / 200 ms)", fault: { kind: "slow-body", chunk: 16, everyMs: 200 } },
  { name: "registry connection reset", fault: { kind: "reset" } },
  { name: "registry reset mid-body (signature blobs)", fault: { kind: "reset-mid-body" }, match: blobPath },
  { name: "registry hang (accepts, never answers)", fault: { kind: "hang" } },
  { name: "registry oversized manifest (8 MiB)", fault: { kind: "oversized", bytes: 8 << 20 } },
  { name: "registry wrong-digest content", fault: { kind: "wrong-digest" } },
];

function policyDoc(name: string, failurePolicy: "Closed" | "Open") {
  return compilePolicy({
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name },
    spec: {
      failurePolicy,
      // Bad content (oversized, wrong digest) is a "rejected" verdict, cached for the
      // negative TTL (default 30 s); a short one keeps the recovery bound small here.
      cache: { positiveTTLSeconds: 300, negativeTTLSeconds: NEGATIVE_TTL_S },
      verifiers: [{ name: "cosign", cosign: { keys: [{ name: "k", pem: keys.publicKeyPem }] } }],
    },
  });
}

beforeAll(async () => {
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.host);
  keys = await cosignGenerateKeyPair();
  // Pushed and signed straight at the registry (crane/cosign run synchronously, and the
  // proxy lives in this process), then referred to through the proxy.
  const s = pushBusyboxImage(reg.host, "rel/signed", "v1", { marker: "rel-signed" });
  const u = pushBusyboxImage(reg.host, "rel/unsigned", "v1", { marker: "rel-unsigned" });
  await cosignSign({ ref: s.pinned, keyDir: keys });
  signed = viaProxy(s);
  unsigned = viaProxy(u);
  closed = await policyDoc("closed", "Closed");
  open = await policyDoc("open", "Open");
}, 300_000);

afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
});

function viaProxy(i: PushedImage): PushedImage {
  const swap = (x: string) => x.replace(reg.host, proxy.host);
  return { repo: swap(i.repo), ref: swap(i.ref), digest: i.digest, pinned: swap(i.pinned) };
}

const subject = (i: PushedImage) => ({ reference: i.ref, digest: i.digest });

function newEngine() {
  return createEngine({
    registry: { timeouts: { connectMs: 1000, totalMs: TOTAL_MS }, cacheBytes: 0 },
    cache: { failedTTLSeconds: FAILED_TTL_S },
  });
}

describe("registry faults: verdicts follow the failure policy, then recover", () => {
  it("baseline: without faults the signed image verifies and the unsigned one is rejected", async () => {
    const e = newEngine();
    expect(await e.verify(subject(signed), closed)).toMatchObject({ allowed: true, outcome: "verified" });
    expect(await e.verify(subject(unsigned), closed)).toMatchObject({ allowed: false, outcome: "rejected" });
    e.registry.close();
  });

  for (const f of FAULTS) {
    it(f.name, async () => {
      const e = newEngine();
      let crashes = 0;
      let undecided = 0;
      let cases = 0;
      let slowest = 0;
      const call = async (img: PushedImage, p: CompiledPolicy): Promise<Verdict | undefined> => {
        cases++;
        const t = Date.now();
        try {
          const v = await e.verify(subject(img), p);
          slowest = Math.max(slowest, Date.now() - t);
          if (typeof v.allowed !== "boolean") undecided++;
          return v;
        } catch {
          crashes++;
          return undefined;
        }
      };
      proxy.setFault(f.fault, f.match);
      let recoveredMs = -1;
      const outcomes: string[] = [];
      try {
        const c = await call(signed, closed);
        const o = await call(signed, open);
        const u = await call(unsigned, closed);
        outcomes.push(
          `signed/Closed ${c?.outcome}`,
          `signed/Open ${o?.outcome}`,
          `unsigned/Closed ${u?.outcome}`,
        );
        // Whatever went wrong, Closed never allows, and nothing unsigned is allowed by Closed.
        expect(c?.allowed, JSON.stringify(c?.reasons)).toBe(false);
        expect(u?.allowed, JSON.stringify(u?.reasons)).toBe(false);
        expect(c?.reasons[0]).toMatch(/^ImagePolicy closed /);
        if (c?.outcome === "failed") {
          // "Could not complete" → the failure policy decides.
          expect(o).toMatchObject({ outcome: "failed", allowed: true });
          expect(c.failure?.code).toMatch(/^(REGISTRY_|TIMEOUT|TOO_LARGE|DIGEST_MISMATCH|MALFORMED)/);
        } else {
          // Bad content is a verdict, not an outage: Open does not let it through either.
          expect(o?.allowed).toBe(false);
        }
        // The requests really went through the fault.
        expect(proxy.count((r) => r.fault === f.fault.kind)).toBeGreaterThan(0);
      } finally {
        proxy.setFault(undefined);
      }
      const t0 = Date.now();
      let last: Verdict | undefined;
      await waitFor(
        "verified again after the fault cleared",
        async () => {
          last = await call(signed, closed);
          return last?.outcome === "verified";
        },
        RECOVERY_LIMIT_MS,
      ).catch(() => {});
      recoveredMs = Date.now() - t0;
      if (last?.outcome !== "verified")
        outcomes.push(`after clearing: ${last?.outcome} cached=${last?.cached} ${last?.reasons.join("; ")}`);
      e.registry.close();
      recordResult({
        area: "fault",
        name: f.name,
        path: "engine + registry client → fault proxy → docker-registry 2.8.3 (cosign-signed image)",
        cases,
        outcome: `${outcomes.join(", ")}; Closed denied, Open ${outcomes[1]?.endsWith("failed") ? "allowed (failure policy)" : `denied (bad content is a verdict, cached ${NEGATIVE_TTL_S} s)`}; recovered in ${(recoveredMs / 1000).toFixed(1)} s (limit ${RECOVERY_LIMIT_MS / 1000} s)`,
        crashes,
        missedDeadlines: slowest > ANSWER_LIMIT_MS ? 1 : 0,
        undecided,
        file: FILE,
      });
      expect(crashes).toBe(0);
      expect(undecided).toBe(0);
      expect(slowest).toBeLessThanOrEqual(ANSWER_LIMIT_MS);
      expect(recoveredMs).toBeLessThanOrEqual(RECOVERY_LIMIT_MS);
    });
  }
});
