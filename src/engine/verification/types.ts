// Types shared by the verification steps (verification/*.ts) and the orchestrator (../verify.ts).
import type { AttestationEvidence, AttestationResult, AttestationSource } from "../attest/index.js";
import type { CosignConfig, NotationConfig } from "../policy/model.js";
import type { ArtifactKind, ArtifactSource, SignatureCheck, Subject } from "../types.js";

export interface VerifierCallOptions {
  verifierName: string;
  now?: Date;
  signal?: AbortSignal;
}

/** The engine's collaborators; createEngine (index.ts) wires the real ones. */
export interface EngineDeps {
  discover(subject: Subject, opts: { signal?: AbortSignal; kinds?: ArtifactKind[] }): Promise<ArtifactSource>;
  notation(source: ArtifactSource, cfg: NotationConfig, opts: VerifierCallOptions): Promise<SignatureCheck[]>;
  cosign(source: ArtifactSource, cfg: CosignConfig, opts: VerifierCallOptions): Promise<SignatureCheck[]>;
  /** Attestation discovery (policies with spec.attestations); absent = none can be found. */
  attestations?(subject: Subject, opts: { signal?: AbortSignal }): Promise<AttestationSource>;
}

/**
 * What the cache holds per digest × policy revision: the verifiers' results, nothing that
 * depends on the image name. `outcome` is the signature stage's own conclusion (it picks
 * the TTL); the verdict a caller gets is made from it per request.
 */
export interface SignatureResult {
  outcome: "verified" | "rejected" | "failed";
  /** `reference` is the first requester's, kept for logs only; never used to decide. */
  subject: { reference: string; digest: string };
  policy: { name: string; revision: string };
  /** Per policy verifier, in policy order. Absent when the run stopped with `error`. */
  perVerifier?: SignatureCheck[][];
  /** The run stopped before the verifiers answered (transient → "could not complete"). */
  error?: { code: string; message: string; transient: boolean };
  /** What was reported before the run stopped with `error`; empty when perVerifier holds them. */
  checks: SignatureCheck[];
  /**
   * spec.attestations / spec.conditions, judged after the signatures passed (attest/). They
   * read only digest-bound data (statements, signature results, `now`), so they are cached
   * here; `expiresAt` is when a time-dependent condition stops holding.
   */
  attestation?: StoredJudgement;
  /**
   * Instead of `attestation` when a condition reads a per-request variable (namespace, the
   * image's name): what verification established, judged per request (judgeSignatures).
   */
  attestationEvidence?: AttestationEvidence;
  expiresAt?: string;
  decidedAt: string;
  durationMs: number;
  cached: boolean;
}

export type StoredJudgement =
  | { state: "passed"; results: AttestationResult[]; reasons: string[] }
  | { state: "failed" | "error"; results: AttestationResult[]; reason: string };
