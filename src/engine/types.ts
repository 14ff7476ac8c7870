import type { Descriptor } from "../base/descriptor.js";
import type { AttestationResult } from "./attest/types.js";

// The engine's boundary types. Everything here is plain data (JSON-serialisable), so the
// agent, the CLI, the audit log and the pull verifier can carry it without engine code.

/** An OCI content descriptor (declared with its parser in the base layer). */
export type { Descriptor };

/** What is being verified: a normalised reference and the top-level digest containerd resolved. */
export interface Subject {
  /** Normalised reference, e.g. "docker.io/library/busybox:1.36" or "127.0.0.1:5000/a/b@sha256:…". */
  reference: string;
  /** Top-level (index or manifest) digest, "sha256:<hex>". */
  digest: string;
  /** The top-level descriptor when known (the pull verifier gets it on stdin). */
  descriptor?: Descriptor;
  /**
   * The namespace asking (create time); absent for a pull or the CLI. Only CEL conditions
   * read it (`request.namespace`, "" when absent); it never selects a policy here.
   */
  namespace?: string;
}

/** An OCI image manifest as far as signature artifacts need it. */
export interface OciManifest {
  schemaVersion: number;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** How a signature artifact was found. */
export type DiscoverySource = "referrers-api" | "referrers-tag" | "cosign-tag";

/** What discovery classified a signature artifact as (from its fetched manifest, never the index entry). */
export type ArtifactKind = "notation" | "cosign-bundle" | "cosign-artifact-sig" | "cosign-simplesigning";

/** A signature artifact found for a subject; its manifest was fetched and digest-checked. */
export interface DiscoveredArtifact {
  /** Classification by the registry layer; set by discoverSignatures. */
  kind?: ArtifactKind;
  /** Digest of the artifact's manifest. */
  digest: string;
  /** Classified artifact type: manifest.artifactType, else config.mediaType. */
  artifactType: string;
  manifest: OciManifest;
  source: DiscoverySource;
}

/** What the signature verifiers get from the registry layer for one subject. */
export interface ArtifactSource {
  subject: Subject;
  artifacts: DiscoveredArtifact[];
  /** True when a cap (referrers count/pages, artifacts fetched) cut discovery short. */
  truncated?: boolean;
  /** Fetches a blob of the subject's repository, verified against its digest and size-capped. */
  fetchBlob(desc: Descriptor, signal?: AbortSignal): Promise<Uint8Array>;
}

export type VerifierKind = "notation" | "cosign";

/**
 * The name of the check that decided a SignatureCheck, one spelling style (camelCase). Rego
 * policies read it (input.verifiers[_].check), so a new name is an addition to that input.
 */
export type CheckName =
  // Any verifier: finding and reading the signature artifacts.
  | "signature" // none of this kind found, or too many
  | "subject" // the artifact names another subject, or the subject's descriptor is unknown
  | "fetch" // a blob could not be fetched
  | "limits" // a size or count bound
  | "format" // malformed content
  | "error" // the verifier reported a non-transient error
  | "internal"
  // Notary Project: the trust policy, then notation's validation types in its order.
  | "trustPolicy"
  | "skip" // level skip: nothing was verified
  | "integrity"
  | "targetArtifact"
  | "authenticity"
  | "expiry"
  | "authenticTimestamp"
  | "revocation"
  | "all" // every validation held
  // cosign: key or keyless material, then the signed payload's claims.
  | "presence"
  | "trustedIdentity"
  | "tlog"
  | "sct"
  | "certificate"
  | "timestamp"
  | "payloadType"
  | "payloadDigest"
  | "dockerReference"
  | "annotations";

/** The result of checking one signature artifact (or the absence of any) with one verifier. */
export interface SignatureCheck {
  /** Name of the verifier entry in the policy. */
  verifier: string;
  kind: VerifierKind;
  /** Digest of the signature artifact's manifest; absent when nothing was found to check. */
  artifactDigest?: string;
  artifactType?: string;
  result: "passed" | "failed" | "error";
  /** Which check decided. */
  check?: CheckName;
  /** Human sentence: why it failed (or what passed). */
  reason: string;
  signer?: string;
  issuer?: string;
  signingTime?: string;
  /** Checks that failed but were only logged (Notary "audit"/"log" actions). */
  warnings?: string[];
  details?: Record<string, unknown>;
}

export type Mode = "Enforce" | "Audit";
export type FailurePolicy = "Closed" | "Open";

/**
 * verified   – signature requirements met
 * rejected   – requirements not met (a verdict, not a failure)
 * failed     – verification could not complete; failurePolicy decided `allowed`
 * exempt     – image or namespace exempt by configuration
 * ungoverned – the policy does not govern this image and lets it through
 */
export type Outcome = "verified" | "rejected" | "failed" | "exempt" | "ungoverned";

/** The verdict report (design.md "Verdict report"). */
export interface Verdict {
  allowed: boolean;
  outcome: Outcome;
  mode: Mode;
  policy: { name: string; revision: string };
  subject: { reference: string; digest: string };
  /** Human sentences; the first one is the headline used in denial messages. */
  reasons: string[];
  verifiers: SignatureCheck[];
  cached: boolean;
  durationMs: number;
  /** ISO time the verification finished (not when a cached copy was served). */
  decidedAt: string;
  /** Set when outcome is "failed". */
  failure?: { code: string; message: string };
  /** True when the policy would deny but mode Audit (or break-glass) allowed it. */
  auditOnly?: boolean;
  /** spec.attestations results (policies that require attestations). */
  attestations?: AttestationResult[];
  /** ISO time a time-dependent condition stops holding: the verdict is not served past it. */
  expiresAt?: string;
  /**
   * A condition reading `request.namespace` decided this verdict: another namespace may get
   * another answer for the same image (the pull path asks each namespace using the policy).
   */
  namespaceDependent?: boolean;
}
