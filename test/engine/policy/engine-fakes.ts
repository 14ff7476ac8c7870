// Shared helpers for engine unit tests: compiled policies from real validation, and
// counting fake collaborators (the real registry/verifiers run in verify.integration.test.ts).
import { compilePolicy } from "../../../src/engine/policy/index.js";
import type { ArtifactSource, SignatureCheck, Subject } from "../../../src/engine/types.js";
import type { EngineDeps } from "../../../src/engine/verify.js";
import { ecKeyPair, selfSignedCert } from "./material.js";

export const key = ecKeyPair();
export const cert = selfSignedCert("engine-unit");

export function digestN(n: number): string {
  return `sha256:${n.toString(16).padStart(64, "0")}`;
}

export function subject(n = 1, repo = "127.0.0.1:5000/team/app"): Subject {
  return { reference: `${repo}:v${n}`, digest: digestN(n) };
}

export async function policy(spec: Record<string, unknown> = {}, name = "team") {
  return compilePolicy({
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name },
    spec: {
      images: ["127.0.0.1:5000/team/**"],
      verifiers: [
        {
          name: "notary",
          notation: { trustedIdentities: ["*"], trustStores: [{ name: "ca1", certificates: cert }] },
        },
        { name: "cosign-key", cosign: { keys: [{ pem: key.publicPem }] } },
      ],
      match: "AnyOf",
      ...spec,
    },
  });
}

export type Behaviour = (
  subject: Subject,
  signal?: AbortSignal,
) => Promise<SignatureCheck[]> | SignatureCheck[];

export const pass =
  (verifier: string, kind: "notation" | "cosign", signer = "CN=release"): Behaviour =>
  () => [
    { verifier, kind, artifactDigest: digestN(999), result: "passed", reason: "signature verified", signer },
  ];
export const fail =
  (verifier: string, kind: "notation" | "cosign", reason = "signature does not verify"): Behaviour =>
  () => [{ verifier, kind, artifactDigest: digestN(998), result: "failed", check: "integrity", reason }];
export const error =
  (
    verifier: string,
    kind: "notation" | "cosign",
    reason = "blob could not be fetched: connection refused",
  ): Behaviour =>
  () => [
    { verifier, kind, result: "error", check: "fetch", reason, details: { code: "REGISTRY_UNAVAILABLE" } },
  ];

/** Counting fakes; `gate` holds discovery until released (to pile up concurrent callers). */
export function fakeDeps(b: {
  discover?: (s: Subject, signal?: AbortSignal) => Promise<void> | void;
  notation?: Behaviour;
  cosign?: Behaviour;
}) {
  const calls = { discover: 0, notation: 0, cosign: 0, signals: [] as AbortSignal[] };
  const deps: EngineDeps = {
    async discover(s, o) {
      calls.discover++;
      if (o.signal) calls.signals.push(o.signal);
      await b.discover?.(s, o.signal);
      const source: ArtifactSource = {
        subject: s,
        artifacts: [],
        fetchBlob: async () => new Uint8Array(),
      };
      return source;
    },
    async notation(source, _cfg, o) {
      calls.notation++;
      return (b.notation ?? fail(o.verifierName, "notation"))(source.subject, o.signal);
    },
    async cosign(source, _cfg, o) {
      calls.cosign++;
      return (b.cosign ?? fail(o.verifierName, "cosign"))(source.subject, o.signal);
    },
  };
  return { deps, calls };
}

export function manualClock(start = Date.parse("2025-06-01T00:00:00Z")) {
  let t = start;
  return {
    now: () => new Date(t),
    advance(seconds: number) {
      t += seconds * 1000;
    },
  };
}

export function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
