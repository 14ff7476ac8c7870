// Conditions that read `request.namespace` or the image's name are evaluated per request over the
// cached attestation evidence (digest × policy revision): one verification, then every
// request — a cached verdict in between — gets the answer for its own namespace and name.
// Envelopes are real DSSE envelopes signed with the policy's cosign key; the signature stage
// is the engine fakes'.
import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import { ExemptImages } from "../../../src/decision/exempt.js";
import type { PolicySelector, Selection } from "../../../src/decision/ports.js";
import { PullDecider } from "../../../src/decision/pull.js";
import type { AttestationSource } from "../../../src/engine/attest/discover.js";
import { requestVars } from "../../../src/engine/attest/index.js";
import { validatePolicy } from "../../../src/engine/policy/index.js";
import type { CompiledPolicy } from "../../../src/engine/policy/model.js";
import type { Descriptor, Subject } from "../../../src/engine/types.js";
import { createEngineCore } from "../../../src/engine/verify.js";
import { digestN, fakeDeps, key, manualClock, pass, policy } from "../policy/engine-fakes.js";

const D = digestN(42);
const SLSA = "https://slsa.dev/provenance/v1";
const IN_TOTO = "application/vnd.in-toto+json";
const APP = "127.0.0.1:5000/team/app";

function envelope(builder: string, extra: Record<string, unknown> = {}): Uint8Array {
  const st = {
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name: "app", digest: { sha256: D.slice(7) } }],
    predicateType: SLSA,
    predicate: { runDetails: { builder: { id: builder } }, ...extra },
  };
  const payload = Buffer.from(JSON.stringify(st));
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${IN_TOTO.length} ${IN_TOTO} ${payload.length} `), payload]);
  const sig = crypto.sign("sha256", pae, { key: key.privatePem, dsaEncoding: "der" });
  return Buffer.from(
    JSON.stringify({
      payloadType: IN_TOTO,
      payload: payload.toString("base64"),
      signatures: [{ sig: sig.toString("base64") }],
    }),
  );
}

/** Engine over fakes whose attestation discovery serves `blobs` as legacy `.att` layers. */
function engineWith(blobs: Uint8Array[], now?: () => Date, cache?: { maxBytes: number }) {
  const { deps, calls } = fakeDeps({ cosign: pass("cosign-key", "cosign") });
  let attestationLookups = 0;
  deps.attestations = async (subject): Promise<AttestationSource> => {
    attestationLookups++;
    const layers: Descriptor[] = blobs.map((b, i) => ({
      mediaType: "application/vnd.dsse.envelope.v1+json",
      digest: `sha256:${crypto.createHash("sha256").update(b).digest("hex")}`,
      size: b.length,
      annotations: { predicateType: SLSA, i: String(i) },
    }));
    return {
      subject,
      truncated: false,
      envelopes: layers.map((layer) => ({
        format: "legacy",
        artifactDigest: digestN(900),
        source: "attestation-tag",
        layer,
        predicateTypeHint: SLSA,
      })),
      fetchBlob: async (d) => blobs[layers.findIndex((l) => l.digest === d.digest)]!,
    };
  };
  const engine = createEngineCore(deps, { ...(now ? { now } : {}), ...(cache ? { cache } : {}) });
  return { engine, calls, lookups: () => attestationLookups };
}

const attest = (conditions: string[]) => ({
  attestations: [
    {
      name: "provenance",
      predicateType: "slsaprovenance1",
      verifier: "cosign-key",
      conditions: conditions.map((expression) => ({ expression })),
    },
  ],
});

const at = (namespace: string, reference = `${APP}:v1`): Subject => ({ reference, digest: D, namespace });

describe("namespace and image-name conditions are evaluated per request", () => {
  it("spec.conditions on namespace: allowed in one namespace, denied in another, from one verification", async () => {
    const { engine, calls, lookups } = engineWith([envelope("https://ci.acme")]);
    const p = await policy({
      ...attest([]),
      conditions: [
        { expression: `request.namespace in ["prod", "staging"]`, message: "runs in prod or staging" },
      ],
    });
    const prod = await engine.verify(at("prod"), p);
    expect(prod).toMatchObject({ allowed: true, outcome: "verified", namespaceDependent: true });
    // Cached in between: the other namespace is answered from the same entry, denied.
    const dev = engine.cached(at("dev"), p);
    expect(dev).toMatchObject({
      allowed: false,
      outcome: "rejected",
      cached: true,
      namespaceDependent: true,
    });
    expect(dev?.reasons[0]).toContain(`spec.conditions[0]: condition "runs in prod or staging" is false`);
    expect(await engine.verify(at("dev"), p)).toMatchObject({ allowed: false, cached: true });
    expect(engine.cached(at("staging"), p)).toMatchObject({ allowed: true, cached: true });
    expect(engine.cached(at("prod"), p)).toMatchObject({ allowed: true, cached: true });
    // No namespace (pull, CLI): `request.namespace` is "".
    expect(engine.cached({ reference: `${APP}:v1`, digest: D }, p)).toMatchObject({ allowed: false });
    expect(calls.discover).toBe(1);
    expect(lookups()).toBe(1);
  });

  it("attestation conditions on namespace pick the envelope per namespace (denied first, then allowed)", async () => {
    const { engine, lookups } = engineWith([envelope("https://ci.team-a"), envelope("https://ci.team-b")]);
    const p = await policy(attest([`predicate.runDetails.builder.id == "https://ci." + request.namespace`]));
    const c = await engine.verify(at("team-c"), p);
    expect(c).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(c.reasons[0]).toContain(
      `attestation provenance (${SLSA}): condition "predicate.runDetails.builder.id == \\"https://ci.\\" + request.namespace" is false`,
    );
    const a = engine.cached(at("team-a"), p);
    const b = engine.cached(at("team-b"), p);
    expect(a).toMatchObject({ allowed: true, cached: true });
    expect(b).toMatchObject({ allowed: true, cached: true });
    expect(lookups()).toBe(1);
  });

  it("conditions on the image's name behave per name for one digest", async () => {
    const { engine, calls } = engineWith([envelope("https://ci.acme")]);
    const p = await policy({
      ...attest([`image.repository == "team/app"`]),
      conditions: [{ expression: `image.tag != "latest" && image.registry == "127.0.0.1:5000"` }],
    });
    expect(await engine.verify(at("x", `${APP}:v1`), p)).toMatchObject({ allowed: true });
    const latest = engine.cached(at("x", `${APP}:latest`), p);
    expect(latest).toMatchObject({ allowed: false, cached: true });
    expect(latest?.reasons[0]).toContain("spec.conditions[0]");
    const other = engine.cached(at("x", "127.0.0.1:5000/team/other:v1"), p);
    expect(other).toMatchObject({ allowed: false, cached: true });
    expect(other?.reasons[0]).toContain(`attestation provenance (${SLSA}): condition "image.repository`);
    // By digest only: no tag, the condition reads "".
    expect(engine.cached(at("x", `${APP}@${D}`), p)).toMatchObject({ allowed: true });
    // A name-independent policy is not marked namespace-dependent.
    expect(engine.cached(at("x", `${APP}:v1`), p)?.namespaceDependent).toBeUndefined();
    expect(calls.discover).toBe(1);
  });

  it("the image variables are canonical: Docker Hub spellings, ports, tag and digest", () => {
    expect(requestVars({ reference: "index.docker.io/library/busybox:1.36", digest: D })).toEqual({
      image: {
        digest: D,
        reference: "docker.io/library/busybox:1.36",
        name: "docker.io/library/busybox",
        registry: "docker.io",
        repository: "library/busybox",
        tag: "1.36",
      },
      request: { namespace: "" },
    });
    const v = requestVars({ reference: `Registry.Example:443/a/b:v2@${D}`, digest: D, namespace: "ns" });
    expect(v.image).toMatchObject({ registry: "registry.example", tag: "v2", name: "registry.example/a/b" });
    expect(v.image.reference).toBe(`registry.example/a/b:v2@${D}`);
    expect(v.request.namespace).toBe("ns");
  });

  it("a time-dependent per-request allow expires with `now`, without a new verification", async () => {
    const clock = manualClock(Date.parse("2026-03-01T00:00:00Z"));
    const { engine, calls } = engineWith(
      [envelope("https://ci.acme", { finishedOn: "2026-02-28T12:00:00Z" })],
      clock.now,
    );
    const p = await policy({
      ...attest([]),
      cache: { positiveTTLSeconds: 86_400, negativeTTLSeconds: 30 },
      conditions: [
        {
          expression: `request.namespace == "prod" && now - timestamp(attestations.provenance.predicate.finishedOn) < duration("24h")`,
        },
      ],
    });
    const v = await engine.verify(at("prod"), p);
    expect(v.allowed).toBe(true);
    // Holds until 2026-03-01T12:00:00Z (to the second, never after).
    const until = Date.parse(v.expiresAt!);
    expect(until).toBeLessThanOrEqual(Date.parse("2026-03-01T12:00:00Z"));
    expect(until).toBeGreaterThan(Date.parse("2026-03-01T11:59:58Z"));
    expect(engine.cached(at("dev"), p)).toMatchObject({ allowed: false });
    clock.advance(11 * 3600);
    expect(engine.cached(at("prod"), p)).toMatchObject({ allowed: true, cached: true });
    clock.advance(2 * 3600);
    const late = engine.cached(at("prod"), p);
    expect(late).toMatchObject({ allowed: false, cached: true });
    expect(late?.expiresAt).toBeUndefined();
    expect(calls.discover).toBe(1);
  });

  it("the cost limit still applies per request", async () => {
    const many = Array.from({ length: 20_000 }, (_, i) => i);
    const { engine } = engineWith([envelope("https://ci.acme", { items: many })]);
    const p = await policy(attest([`request.namespace == "prod" && predicate.items.all(x, x >= 0)`]));
    const v = await engine.verify(at("prod"), p);
    expect(v.allowed).toBe(false);
    expect(v.reasons[0]).toContain("could not be evaluated: cost limit exceeded (10000 iterations)");
    // Short-circuit: another namespace never reaches the comprehension, and is denied as false.
    expect(engine.cached(at("dev"), p)?.reasons[0]).toContain("is false");
  });

  it("type errors on the new variables point at the expression", () => {
    const r = (expression: string) => {
      const out = validatePolicy({
        apiVersion: "tollgate.dev/v1alpha1",
        kind: "ImagePolicy",
        metadata: { name: "p" },
        spec: {
          verifiers: [{ name: "k", cosign: { keys: [{ pem: key.publicPem }] } }],
          conditions: [{ expression }],
        },
      });
      return out.ok ? [] : out.issues;
    };
    expect(r(`image.tagg == "v1"`)).toEqual([
      {
        path: "spec.conditions[0].expression",
        message: `1:6: undefined field 'tagg' of image (fields: digest, reference, name, registry, repository, tag) in "image.tagg == \\"v1\\""`,
      },
    ]);
    expect(r(`true && request.namespace == 1`)[0]?.message).toBe(
      `1:27: no matching overload for '==' applied to (string, int) in "true && request.namespace == 1"`,
    );
    expect(r(`request.namespace.name == "x"`)[0]?.message).toMatch(/^1:18: type string has no field 'name'/);
    expect(r(`request.ns == "x"`)[0]?.message).toMatch(
      /^1:8: undefined field 'ns' of request \(fields: namespace\)/,
    );
    // `namespace` is reserved in CEL (as in Kubernetes): the error says where it is.
    expect(r(`image.tag == "v1" && namespace == "x"`)[0]?.message).toBe(
      `1:22: syntax error: reserved identifier (namespace is reserved in CEL: the pod's namespace is request.namespace) in "image.tag == \\"v1\\" && namespace == \\"x\\""`,
    );
    expect(r(`request.namespace.startsWith("team-") && image.name.endsWith("/app")`)).toEqual([]);
  });
});

describe("pull time: `request.namespace` conditions are asked of the namespaces using the policy", () => {
  function pull(p: CompiledPolicy, engine: ReturnType<typeof engineWith>["engine"], using?: string[]) {
    const selector: PolicySelector<CompiledPolicy> = {
      select: (namespace): Selection<CompiledPolicy> => ({ kind: "policy", namespace, policy: p }),
      policiesInUse: () => [p],
      defaultPolicy: () => p,
      ...(using ? { namespacesUsing: () => using } : {}),
    };
    return new PullDecider<CompiledPolicy>({
      selector,
      engine,
      exemptImages: new ExemptImages([]),
      mode: "any-policy-in-use",
      timeoutMs: 5000,
      failurePolicy: "Closed",
      sink: { record: () => {} },
    });
  }
  const req = { name: `${APP}:v1`, digest: D };

  it("admitted when some namespace using the policy could run it, denied when none could", async () => {
    const { engine, calls } = engineWith([envelope("https://ci.acme")]);
    const p = await policy({ ...attest([]), conditions: [{ expression: `request.namespace == "prod"` }] });
    expect(await pull(p, engine, ["dev", "prod"]).decide(req)).toMatchObject({ allowed: true });
    const denied = await pull(p, engine, ["dev", "qa"]).decide(req);
    expect(denied).toMatchObject({ allowed: false, kind: "rejected" });
    expect(denied.reason).toContain(`condition "request.namespace == \\"prod\\"" is false`);
    expect(denied.reason).not.toContain("qa");
    // No namespace known to use it: `request.namespace` is "" (as for `tollgate verify`).
    expect(await pull(p, engine, []).decide(req)).toMatchObject({ allowed: false });
    expect(await pull(p, engine).decide(req)).toMatchObject({ allowed: false });
    expect(calls.discover).toBe(1);
  });

  it("with a cache that keeps nothing, a long namespace list costs one more verification, not one each (later namespaces go unasked)", async () => {
    const { engine, calls } = engineWith([envelope("https://ci.acme")], undefined, { maxBytes: 10 });
    const p = await policy({ ...attest([]), conditions: [{ expression: `request.namespace == "ns-9"` }] });
    const names = Array.from({ length: 10 }, (_, i) => `ns-${i}`);
    expect(await pull(p, engine, names).decide(req)).toMatchObject({ allowed: false });
    expect(calls.discover).toBe(2);
  });

  it("the empty namespace never stands in for a namespace that exists", async () => {
    const { engine } = engineWith([envelope("https://ci.acme")]);
    const p = await policy({
      ...attest([]),
      conditions: [{ expression: `request.namespace != "restricted"` }],
    });
    // "" would pass; the only namespace using the policy would not run it.
    expect(await pull(p, engine, ["restricted"]).decide(req)).toMatchObject({ allowed: false });
    expect(await pull(p, engine, ["restricted", "open"]).decide(req)).toMatchObject({ allowed: true });
    expect(await pull(p, engine, []).decide(req)).toMatchObject({ allowed: true });
  });
});
