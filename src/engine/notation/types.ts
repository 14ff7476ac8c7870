// Configuration shapes the policy layer passes in (names follow notation's trust policy and
// trust store layout), and the parsed form of a signature envelope.

export type TrustStoreType = "ca" | "signingAuthority" | "tsa";
export type ValidationType = "integrity" | "authenticity" | "authenticTimestamp" | "expiry" | "revocation";
export type ValidationAction = "enforce" | "log" | "skip";
export type VerificationLevelName = "strict" | "permissive" | "audit" | "skip";

export interface NotationTrustStore {
  type: TrustStoreType;
  name: string;
  /** PEM text; one entry may hold several certificates. */
  certificates: string[];
}

export interface NotationTrustPolicy {
  name: string;
  registryScopes: string[];
  signatureVerification: {
    level: VerificationLevelName;
    override?: Partial<Record<ValidationType, ValidationAction>>;
    /** notation's optional switch: "always" (default) or "afterCertExpiry". */
    verifyTimestamp?: "always" | "afterCertExpiry";
  };
  trustStores: string[];
  trustedIdentities: string[];
}

export interface NotationRevocationConfig {
  enabled: boolean;
  /** Per CRL download; the spec's default is 5 s. */
  timeoutMs?: number;
  /** Cap on one CRL's size; default 10 MiB. */
  maxCrlBytes?: number;
}

export interface NotationConfig {
  trustPolicies: NotationTrustPolicy[];
  trustStores: NotationTrustStore[];
  revocation?: NotationRevocationConfig;
}

export type SigningScheme = "notary.x509" | "notary.x509.signingAuthority";
export type SignatureAlgorithm = "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "ES512";

export const ENVELOPE_JWS = "application/jose+json";
export const ENVELOPE_COSE = "application/cose";
export const PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json";
export const SIGNATURE_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature";

/** What both envelope formats parse into; nothing here is verified yet. */
export interface ParsedEnvelope {
  format: "jws" | "cose";
  algorithm: SignatureAlgorithm;
  contentType: string;
  signingScheme: SigningScheme;
  /** Signing time (notary.x509) or authentic signing time (notary.x509.signingAuthority). */
  signingTime: Date;
  expiry?: Date;
  /** DER certificates, leaf first. */
  certChain: Uint8Array[];
  payload: Uint8Array;
  signature: Uint8Array;
  /** The exact bytes the signature covers. */
  signedBytes: Uint8Array;
  timestampToken?: Uint8Array;
  signingAgent?: string;
}
