// Issue 6 tenancy matrix: tenant = pod namespace. Two namespaces with different policies
// (team-a trusts cosign key A, read from a ConfigMap; team-b trusts notation certificate B,
// read from a Secret), a third namespace on the default policy, and images whose digests are
// shared by every tenant (the node's image store is shared). Real signatures from the real
// cosign and notation CLIs in a loopback docker-registry, the policy source on informers
// against the fake API server, and the engine's verify. Policy changes flip verdicts
// without a restart because the revision (and so the verdict cache key) changes.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../src/engine/index.js";
import type { Verdict } from "../../src/engine/types.js";
import { KubernetesPolicySource } from "../../src/k8s/source.js";
import { FakeApiServer, type KObject } from "../support/fake-apiserver.js";
import { type PushedImage, pushBusyboxImage } from "../support/images.js";
import { waitFor } from "../support/procs.js";
import type { LocalRegistry } from "../support/registry.js";
import {
  type CosignKeys,
  cosignGenerateKeyPair,
  cosignSign,
  type NotationConfig,
  notationSign,
} from "../support/signing.js";
import { type SigningFixture, startSigningFixture } from "../support/signing-fixture.js";

let fx: SigningFixture;
let reg: LocalRegistry;
let api: FakeApiServer;
let src: KubernetesPolicySource;
let keyA: CosignKeys;
let keyC: CosignKeys; // signs nothing: used to rotate tenant A's trust away from A
let certB: NotationConfig;
const img: Record<"signedA" | "signedB" | "signedBoth" | "unsigned", PushedImage> = {} as never;
const engine = createEngine();

function tenantA(mode: "Enforce" | "Audit" = "Enforce"): KObject {
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name: "tenant-a" },
    spec: {
      mode,
      verifiers: [
        {
          name: "cosign-a",
          cosign: {
            keys: [
              {
                name: "a",
                configMapRef: { namespace: "tollgate-system", name: "trust-a", key: "cosign.pub" },
              },
            ],
          },
        },
      ],
    },
  };
}

function tenantB(): KObject {
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name: "tenant-b" },
    spec: {
      verifiers: [
        {
          name: "notation-b",
          notation: {
            trustedIdentities: ["*"],
            trustStores: [
              {
                type: "ca",
                name: "tenant-b",
                secretRef: { namespace: "tollgate-system", name: "trust-b", key: "ca.crt" },
              },
            ],
          },
        },
      ],
    },
  };
}

function baseline(): KObject {
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name: "baseline" },
    spec: { verifiers: [{ name: "cosign-a", cosign: { keys: [{ name: "a", pem: keyA.publicKeyPem }] } }] },
  };
}

beforeAll(async () => {
  fx = await startSigningFixture({ notationKey: "tenant-b" });
  ({ reg, keys: keyA, notation: certB } = fx);
  keyC = await cosignGenerateKeyPair(path.join(fx.work, "cosign-c"));
  img.signedA = pushBusyboxImage(reg.host, "shared/app", "a", { marker: "a" });
  img.signedB = pushBusyboxImage(reg.host, "shared/app", "b", { marker: "b" });
  img.signedBoth = pushBusyboxImage(reg.host, "shared/app", "both", { marker: "both" });
  img.unsigned = pushBusyboxImage(reg.host, "shared/app", "unsigned", { marker: "unsigned" });
  // One subject at a time: both tools rewrite the shared referrers tag index.
  await cosignSign({ ref: img.signedA.pinned, keyDir: keyA });
  await notationSign({ ref: img.signedB.pinned, configDir: certB.configDir });
  await cosignSign({ ref: img.signedBoth.pinned, keyDir: keyA });
  await notationSign({ ref: img.signedBoth.pinned, configDir: certB.configDir });

  api = await FakeApiServer.start();
  api.apply("namespaces", {
    metadata: { name: "team-a", annotations: { "tollgate.dev/policy": "tenant-a" } },
  });
  api.apply("namespaces", {
    metadata: { name: "team-b", annotations: { "tollgate.dev/policy": "tenant-b" } },
  });
  api.apply("namespaces", { metadata: { name: "team-c" } });
  api.apply("configmaps", {
    metadata: { name: "trust-a", namespace: "tollgate-system" },
    data: { "cosign.pub": keyA.publicKeyPem },
  });
  api.apply("secrets", {
    metadata: { name: "trust-b", namespace: "tollgate-system" },
    data: { "ca.crt": Buffer.from(readFileSync(certB.certPath)).toString("base64") },
  });
  api.apply("imagepolicies", tenantA());
  api.apply("imagepolicies", tenantB());
  api.apply("imagepolicies", baseline());
  src = new KubernetesPolicySource({
    kubeConfig: api.kubeConfig(),
    config: { defaultPolicy: "baseline" },
    backoff: { initialMs: 50, maxMs: 500, resetAfterMs: 5000 },
  });
  await src.start();
  await src.whenReady(60_000);
  expect(src.status().rejected).toEqual([]);
}, 300_000);

afterAll(async () => {
  await src?.stop();
  await api?.stop();
  await fx?.stop();
});

async function decide(namespace: string, image: PushedImage): Promise<Verdict> {
  const sel = src.select(namespace);
  if (sel.kind !== "policy")
    throw new Error(`${namespace}: ${sel.kind} ${"message" in sel ? sel.message : ""}`);
  return engine.verify({ reference: image.ref, digest: image.digest }, sel.policy);
}

type Row = Record<keyof typeof img, boolean>;

async function matrix(namespaces: string[]): Promise<Record<string, Row>> {
  const out: Record<string, Row> = {};
  for (const ns of namespaces) {
    const row = {} as Row;
    for (const k of Object.keys(img) as (keyof typeof img)[]) row[k] = (await decide(ns, img[k])).allowed;
    out[ns] = row;
  }
  return out;
}

describe("tenancy matrix (issue 6)", () => {
  it("each namespace gets its own policy's verdict for the same shared digests", async () => {
    expect(await matrix(["team-a", "team-b", "team-c"])).toEqual({
      "team-a": { signedA: true, signedB: false, signedBoth: true, unsigned: false },
      "team-b": { signedA: false, signedB: true, signedBoth: true, unsigned: false },
      "team-c": { signedA: true, signedB: false, signedBoth: true, unsigned: false },
    });
    // Cross-tenant reuse: team-a's cached "allowed" for signedA is never served to team-b.
    const a = await decide("team-a", img.signedA);
    const b = await decide("team-b", img.signedA);
    expect(a).toMatchObject({ allowed: true, cached: true, policy: { name: "tenant-a" } });
    expect(b).toMatchObject({ allowed: false, policy: { name: "tenant-b" } });
    expect(b.subject.digest).toBe(a.subject.digest);
    expect(b.reasons[0]).toBeTruthy();
    const c = await decide("team-c", img.signedA);
    expect(c.policy.name).toBe("baseline");
  });

  it("changing a policy changes its revision and the verdict, without a restart", async () => {
    const r1 = src.policies().find((p) => p.name === "tenant-a")!.revision;
    // 1. The policy document: Enforce → Audit lets the unsigned image through, audited.
    api.apply("imagepolicies", tenantA("Audit"));
    await waitFor(
      "tenant-a revision 2",
      () => src.policies().find((p) => p.name === "tenant-a")?.revision !== r1,
    );
    const audited = await decide("team-a", img.unsigned);
    expect(audited).toMatchObject({ allowed: true, auditOnly: true, cached: false, mode: "Audit" });
    expect(audited.policy.revision).not.toBe(r1);
    api.apply("imagepolicies", tenantA("Enforce"));
    await waitFor(
      "tenant-a back to Enforce",
      () => src.policies().find((p) => p.name === "tenant-a")?.mode === "Enforce",
    );
    const r3 = src.policies().find((p) => p.name === "tenant-a")!.revision;
    expect((await decide("team-a", img.unsigned)).allowed).toBe(false);

    // 2. The trust material alone: tenant A's ConfigMap now holds key C, which signed nothing.
    api.modify("configmaps", "trust-a", "tollgate-system", (o) => {
      o.data = { "cosign.pub": keyC.publicKeyPem };
    });
    await waitFor(
      "tenant-a revision from the ConfigMap",
      () => src.policies().find((p) => p.name === "tenant-a")?.revision !== r3,
    );
    const rotated = await decide("team-a", img.signedA);
    expect(rotated).toMatchObject({ allowed: false, cached: false });
    // Other tenants are untouched: baseline trusts key A inline, tenant-b never trusted it.
    expect(await matrix(["team-a", "team-b", "team-c"])).toEqual({
      "team-a": { signedA: false, signedB: false, signedBoth: false, unsigned: false },
      "team-b": { signedA: false, signedB: true, signedBoth: true, unsigned: false },
      "team-c": { signedA: true, signedB: false, signedBoth: true, unsigned: false },
    });
  });

  it("removing the namespace annotation falls back to the default policy", async () => {
    api.modify("namespaces", "team-b", undefined, (o) => {
      o.metadata.annotations = {};
    });
    await waitFor("team-b on the default", () => {
      const s = src.select("team-b");
      return s.kind === "policy" && s.policy.name === "baseline";
    });
    expect((await matrix(["team-b"]))["team-b"]).toEqual({
      signedA: true,
      signedB: false,
      signedBoth: true,
      unsigned: false,
    });
    // And naming a policy that does not exist fails closed rather than using the default.
    api.modify("namespaces", "team-b", undefined, (o) => {
      o.metadata.annotations = { "tollgate.dev/policy": "tenant-z" };
    });
    await waitFor("team-b fails closed", () => src.select("team-b").kind === "error");
    expect(src.select("team-b")).toMatchObject({ kind: "error", failurePolicy: "Closed" });
  });
});
