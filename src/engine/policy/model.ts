// The ImagePolicy model (tollgate.dev/v1alpha1, kind ImagePolicy, cluster-scoped).
//
// Three layers, data flowing one way:
//   raw document (YAML/JSON object, untrusted)
//     → PolicySpec: validated and normalised, trust material still *referenced*  (validate.ts)
//     → CompiledPolicy: references resolved, revision computed, Rego loaded       (compile.ts)
// Only a CompiledPolicy reaches the engine's `verify`.

import type { CompiledAttestationPolicy } from "../attest/types.js";
import type { CosignConfig, CosignIdentity } from "../cosign/types.js";
import type {
  NotationConfig,
  TrustStoreType,
  ValidationAction,
  ValidationType,
  VerificationLevelName,
} from "../notation/types.js";
import type { FailurePolicy, Mode, SignatureCheck } from "../types.js";

export const API_VERSION = "tollgate.dev/v1alpha1";
export const KIND = "ImagePolicy";

/** A key inside a namespaced Secret or ConfigMap (the policy is cluster-scoped, so namespace is required). */
export interface ObjectKeyRef {
  name: string;
  namespace: string;
  key: string;
}

/** What a TrustMaterialResolver is asked to fetch. */
export interface TrustMaterialRef extends ObjectKeyRef {
  kind: "Secret" | "ConfigMap";
}

/**
 * A certificate or key in an Azure Key Vault, named by a key management provider of the policy
 * (spec.keyManagementProviders[].azureKeyVault) or by an azurekms:// cosign key URI.
 */
export interface KeyVaultRef {
  kind: "AzureKeyVaultCertificate" | "AzureKeyVaultKey";
  /** https://<vault>.vault.azure.net: scheme, host and port, no path. */
  vaultURI: string;
  name: string;
  /** A pinned version; absent = the latest version, followed on every refresh. */
  version?: string;
  /** Identity to use (a user-assigned or workload identity); absent = the agent's Azure credential. */
  tenantID?: string;
  clientID?: string;
  refreshSeconds: number;
}

/** Everything a policy's trust material can be read from besides inline text. */
export type MaterialRef = TrustMaterialRef | KeyVaultRef;

export function isKeyVaultRef(ref: MaterialRef): ref is KeyVaultRef {
  return ref.kind === "AzureKeyVaultCertificate" || ref.kind === "AzureKeyVaultKey";
}

/** "AzureKeyVaultKey/https://v.vault.azure.net/name": what a provider reports as changed. */
export function keyVaultRefKey(ref: Pick<KeyVaultRef, "kind" | "vaultURI" | "name">): string {
  return `${ref.kind}/${ref.vaultURI}/${ref.name}`;
}

/**
 * Resolves Secret/ConfigMap references to bytes (and Key Vault references, through the key
 * management providers, where the caller has them: resolveKey). The Kubernetes policy source implements it
 * against the API server; the file source and tests implement it with a map. It must throw
 * (anything) when the object or key does not exist: a missing reference makes the policy
 * invalid, it never means "no trust material".
 */
export interface TrustMaterialResolver {
  resolve(ref: TrustMaterialRef, signal?: AbortSignal): Promise<Uint8Array | string>;
  /** Key Vault material through the key management providers; absent = none configured. */
  resolveKey?(ref: KeyVaultRef, signal?: AbortSignal): Promise<Uint8Array | string>;
}

/** Inline value or a reference: exactly one of the fields is set after validation. */
export interface MaterialSource {
  inline?: string;
  secretRef?: ObjectKeyRef;
  configMapRef?: ObjectKeyRef;
  /** Every certificate (trust stores) or key (cosign) of the named spec.keyManagementProviders[]. */
  keyManagementProvider?: string;
  /** One Key Vault key (cosign keys given as azurekms://<vault host>/<key>[/<version>]). */
  kms?: string;
}

/** A named Key Vault object, with an optional pinned version. */
export interface KeyVaultObjectSpec {
  name: string;
  version?: string;
}

/** spec.keyManagementProviders[]: shaped like Ratify's KeyManagementProvider (type azurekeyvault). */
export interface KeyManagementProviderSpec {
  name: string;
  /** Seconds between refreshes (a new version of an unpinned object rolls the revision). */
  refreshIntervalSeconds: number;
  azureKeyVault: {
    vaultURI: string;
    tenantID?: string;
    clientID?: string;
    certificates: KeyVaultObjectSpec[];
    keys: KeyVaultObjectSpec[];
  };
}

export type Match = "AnyOf" | "AllOf";
export type UnmatchedImages = "Allow" | "Deny";

// Verifier vocabulary is owned by the verifiers (notation/types.ts, cosign/types.ts); the
// spec names it in ImagePolicy terms. A level "skip" only comes from a verbatim trust policy
// document, so the spec's own `level` field cannot say it.
export type NotationLevel = Exclude<VerificationLevelName, "skip">;
export type NotationCheckName = ValidationType;
export type NotationAction = ValidationAction;
export type NotationTrustStoreType = TrustStoreType;

export interface NotationTrustStoreSpec {
  type: NotationTrustStoreType;
  name: string;
  /** PEM bundle (one or more CERTIFICATE blocks), inline or referenced. */
  certificates: MaterialSource;
}

export interface NotationVerifierSpec {
  trustPolicy?: undefined;
  level: NotationLevel;
  override?: Partial<Record<NotationCheckName, NotationAction>>;
  /** "*" or "x509.subject: <DN>" entries (Notary Project trust policy syntax). */
  trustedIdentities: string[];
  trustStores: NotationTrustStoreSpec[];
}

/**
 * A whole notation trust policy document (trustpolicy.json, version 1.0) used verbatim: its
 * registryScopes pick the trust policy per image exactly as `notation verify` does.
 */
export interface NotationDocumentVerifierSpec {
  trustPolicy: MaterialSource;
  level?: undefined;
  /** The stores the document names; store names follow notation's [a-zA-Z0-9_.-]+. */
  trustStores: NotationTrustStoreSpec[];
}

export interface CosignKeySpec {
  name?: string;
  /** A PEM public key, inline (`pem`) or referenced. */
  pem: MaterialSource;
}

export type CosignIdentitySpec = CosignIdentity;

/** The Sigstore trusted root from a TUF repository (docs/keyless.md). */
export interface TufTrustedRootSpec {
  /** Metadata base URL; default the public-good instance. */
  mirror: string;
  /** The TUF root.json the chain starts from; absent = the root shipped for the public-good instance. */
  root?: MaterialSource;
  refreshIntervalSeconds: number;
}

export interface CosignKeylessSpec {
  /** Sigstore trusted root JSON (inline text or object, or a ConfigMap reference); or `tuf`. */
  trustedRoot?: MaterialSource;
  tuf?: TufTrustedRootSpec;
  identities: CosignIdentitySpec[];
  requireTlog: boolean;
  requireSct: boolean;
}

export interface CosignVerifierSpec {
  keys?: CosignKeySpec[];
  keyless?: CosignKeylessSpec;
  /** Annotations every accepted signature's payload must carry (exact values). */
  annotations?: Record<string, string>;
}

export type VerifierSpec =
  | { name: string; notation: NotationVerifierSpec | NotationDocumentVerifierSpec; cosign?: undefined }
  | { name: string; cosign: CosignVerifierSpec; notation?: undefined };

export interface RegoSpec {
  /** The compiled OPA policy (.wasm): inline base64 or a Secret/ConfigMap reference. */
  module: MaterialSource;
  /** Entrypoint name as compiled, e.g. "tollgate/allow". */
  entrypoint: string;
  /** Optional `data` document handed to the policy. */
  data?: unknown;
}

/** A CEL condition (docs: ImagePolicy `spec.attestations[].conditions`, `spec.conditions`). */
export interface ConditionSpec {
  expression: string;
  message?: string;
}

/** A required in-toto attestation (cosign attest), signed by a cosign verifier of this policy. */
export interface AttestationSpec {
  name: string;
  /** Full predicate type URI (aliases resolved by validation). */
  predicateType: string;
  verifier: string;
  conditions: ConditionSpec[];
}

export interface CacheSpec {
  positiveTTLSeconds: number;
  negativeTTLSeconds: number;
}

/** A validated, normalised ImagePolicy spec with every default filled in. */
export interface PolicySpec {
  images: string[];
  unmatchedImages: UnmatchedImages;
  exemptImages: string[];
  verifiers: VerifierSpec[];
  keyManagementProviders?: KeyManagementProviderSpec[];
  match: Match;
  rego?: RegoSpec;
  attestations?: AttestationSpec[];
  conditions?: ConditionSpec[];
  mode: Mode;
  failurePolicy: FailurePolicy;
  cache: CacheSpec;
}

/** The result of validation: name + normalised spec (nothing resolved yet). */
export interface ParsedPolicy {
  name: string;
  spec: PolicySpec;
}

export const DEFAULTS = {
  images: ["**"],
  unmatchedImages: "Deny" as UnmatchedImages,
  match: "AllOf" as Match,
  mode: "Enforce" as Mode,
  failurePolicy: "Closed" as FailurePolicy,
  positiveTTLSeconds: 300,
  negativeTTLSeconds: 30,
  keyRefreshIntervalSeconds: 300,
} as const;

/** Upper bound for configured TTLs: a verdict older than a day is not a verdict. */
export const MAX_TTL_SECONDS = 86_400;

// ---- What the signature verifiers get: their own configuration types, declared once there ----

export type { CosignConfig } from "../cosign/types.js";
export type { NotationConfig, NotationTrustPolicy, NotationTrustStore } from "../notation/types.js";

export type CompiledVerifier =
  | { name: string; kind: "notation"; notation: NotationConfig }
  | { name: string; kind: "cosign"; cosign: CosignConfig };

// ---- Rego ----

/**
 * The documented input of a Rego policy (docs: ImagePolicy `spec.rego`):
 *   subject   – { reference, digest }
 *   policy    – { name, revision, mode, match }
 *   verifiers – every SignatureCheck the policy's verifiers produced
 *   match     – { allowed, reason }: the built-in AnyOf/AllOf decision
 * The entrypoint returns either a boolean (allow) or { allow: boolean, reasons?: string[] }.
 * An undefined result (empty result set) denies.
 */
export interface RegoInput {
  subject: { reference: string; digest: string };
  policy: { name: string; revision: string; mode: Mode; match: Match };
  verifiers: SignatureCheck[];
  match: { allowed: boolean; reason: string };
}

export interface RegoDecision {
  allow: boolean;
  reasons: string[];
}

export interface CompiledRego {
  entrypoint: string;
  /** Evaluates the module; throws EngineError("INVALID_POLICY") when the module misbehaves. */
  evaluate(input: RegoInput): RegoDecision;
}

/** A policy ready for the engine. Immutable; a new revision is a new object. */
export interface CompiledPolicy {
  name: string;
  /** "sha256:<hex>" over the canonical spec, resolved trust material and Rego module bytes. */
  revision: string;
  spec: PolicySpec;
  mode: Mode;
  failurePolicy: FailurePolicy;
  match: Match;
  unmatchedImages: UnmatchedImages;
  verifiers: CompiledVerifier[];
  rego?: CompiledRego;
  /** spec.attestations + spec.conditions, CEL compiled. */
  attest?: CompiledAttestationPolicy;
  cache: CacheSpec;
  /** True when one of spec.images matches the (normalised) reference. */
  governs(reference: string): boolean;
  /** True when one of spec.exemptImages matches the (normalised) reference. */
  isExempt(reference: string): boolean;
}
