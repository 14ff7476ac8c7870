// Compiled attestation policy (built by policy/compile.ts from spec.attestations and
// spec.conditions) and the per-verification results the verdict carries.
import type { CompiledCondition } from "../cel/index.js";

export interface CompiledConditionSpec {
  /** Where it sits in the policy, e.g. "spec.attestations[0].conditions[1]". */
  path: string;
  expression: string;
  /** The policy author's sentence for a false condition (defaults to the expression). */
  message?: string;
  condition: CompiledCondition;
  /** Reads a per-request variable (namespace, the image's name): evaluated per request. */
  perRequest: boolean;
  /** Reads `request.namespace` (a pull, which has none, asks every namespace using the policy). */
  readsNamespace: boolean;
}

export interface CompiledAttestation {
  name: string;
  /** Full predicate type URI (aliases such as "slsaprovenance1" are resolved). */
  predicateType: string;
  /** Name of the cosign verifier in spec.verifiers whose keys/identities must have signed it. */
  verifier: string;
  conditions: CompiledConditionSpec[];
}

export interface CompiledAttestationPolicy {
  attestations: CompiledAttestation[];
  conditions: CompiledConditionSpec[];
  /** Some condition reads a per-request variable: the cache keeps evidence, not a judgement. */
  perRequest: boolean;
  /** Some condition reads `request.namespace`. */
  readsNamespace: boolean;
  /** Some condition reads `now`. */
  usesNow: boolean;
}

/** One attestation requirement's outcome (plain data: it is part of the cached verdict). */
export interface AttestationResult {
  name: string;
  predicateType: string;
  verifier: string;
  result: "passed" | "failed" | "error";
  /** One sentence: what satisfied it, or why nothing did. */
  reason: string;
  artifactDigest?: string;
  format?: "bundle" | "legacy";
  signer?: string;
  issuer?: string;
}

/** A verified statement's data, kept only for condition evaluation (never cached or logged). */
export interface VerifiedStatement {
  predicateType: string;
  predicate: unknown;
  signer?: string;
}

/**
 * What verification established for one requirement, before any condition: the envelopes
 * that have the predicate type, verify with the verifier's trust and name the digest
 * (discovery order), and — for when none does — the furthest any other got. Plain data: it
 * is what the verdict cache keeps for policies whose conditions are evaluated per request.
 */
export interface RequirementEvidence {
  name: string;
  candidates: Candidate[];
  /** The answer when no candidate exists (no candidate → no condition to evaluate). */
  miss: { result: "failed" | "error"; reason: string; artifactDigest?: string; format?: "bundle" | "legacy" };
}

export interface Candidate {
  artifactDigest: string;
  format: "bundle" | "legacy";
  signer: string;
  issuer?: string;
  predicateType: string;
  predicate: unknown;
}

export interface AttestationEvidence {
  requirements: RequirementEvidence[];
}

export interface AttestationOutcome {
  results: AttestationResult[];
  /** name → verified statement (only for passed requirements). */
  statements: Map<string, VerifiedStatement>;
  /** Earliest time a time-dependent attestation condition stops holding (within the horizon). */
  expiresAt?: Date;
  /** A condition reading `request.namespace` was evaluated (another namespace may be answered otherwise). */
  readNamespace: boolean;
}
