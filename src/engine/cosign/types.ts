// Cosign verifier configuration (the policy layer builds this) and the artifact shapes
// cosign 3.1.1 writes (protocols.md §7.3).
import type { TufSource } from "../sigstore-trust/types.js";

/** A trusted signing key. `pem` is a PUBLIC KEY (SPKI) PEM; "RSA PUBLIC KEY" is accepted too. */
export interface CosignKey {
  name?: string;
  pem: string;
}

/**
 * A trusted keyless signer. Exact values compare as strings; the *RegExp forms are JavaScript
 * regular expressions matched unanchored, as cosign's --certificate-identity-regexp is
 * (write ^…$ to anchor). Each identity needs an issuer and a subject constraint.
 */
export interface CosignIdentity {
  issuer?: string;
  issuerRegExp?: string;
  subject?: string;
  subjectRegExp?: string;
}

export interface CosignKeylessConfig {
  /** Parsed trusted_root.json (Sigstore TrustedRoot, JSON form). */
  trustedRoot?: unknown;
  /** Where the engine gets the trusted root instead (engine/sigstore-trust). */
  tuf?: TufSource;
  identities: CosignIdentity[];
  /** Require at least one verified transparency-log entry. Default true. */
  requireTlog?: boolean;
  /** Require at least one verified SCT in the Fulcio certificate. Default true. */
  requireSct?: boolean;
}

export interface CosignConfig {
  keys?: CosignKey[];
  keyless?: CosignKeylessConfig;
  /** Required annotations: simple-signing `optional` map / in-toto subject annotations. */
  annotations?: Record<string, string>;
  /**
   * Require a simple-signing payload's critical.identity.docker-reference to name the
   * subject's repository. cosign does not check it by default; bundles do not carry it.
   */
  requireDockerReference?: boolean;
}

export interface VerifyCosignOptions {
  verifierName: string;
  /** Reserved for time-dependent checks; keyless uses the log/TSA time as Sigstore does. */
  now?: Date;
  signal?: AbortSignal;
}

export const MT_BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json";
export const MT_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json";
export const MT_COSIGN_ARTIFACT_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json";
export const MT_IN_TOTO = "application/vnd.in-toto+json";
export const COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1";
export const IN_TOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1";
export const ANN_SIGNATURE = "dev.cosignproject.cosign/signature";
export const ANN_CERTIFICATE = "dev.sigstore.cosign/certificate";
export const SIMPLESIGNING_TYPE = "cosign container image signature";

/** Caps on what one signature artifact may make us read or do. */
export const LIMITS = {
  /** Bytes of one bundle or simple-signing layer. */
  maxLayerBytes: 256 * 1024,
  /** Simple-signing layers considered per manifest. */
  maxLayersPerManifest: 32,
  /** Cosign artifacts considered per subject. */
  maxArtifacts: 64,
  /** Nesting depth of JSON we parse. */
  maxJsonDepth: 32,
  /** in-toto subjects per statement. */
  maxStatementSubjects: 1024,
  /** Configured keys / identities. */
  maxKeys: 64,
  maxIdentities: 64,
} as const;
