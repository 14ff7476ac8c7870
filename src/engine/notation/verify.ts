// Notary Project signature verification: one envelope against one trust policy, in the
// order notation-go uses (integrity → authenticity → trusted identity → expiry →
// authentic timestamp → revocation), each check enforced / logged / skipped per level.
// The validations themselves are in validations.ts; this file selects the policy, walks the
// signature artifacts and applies the level's action to each validation's finding.
import { EngineError, isEngineError, toEngineError } from "../errors.js";
import type { ArtifactSource, Descriptor, DiscoveredArtifact, SignatureCheck } from "../types.js";
import type { CrlCache } from "./crl.js";
import { type Enforcement, enforcement, selectPolicy } from "./policy.js";
import {
  ENVELOPE_COSE,
  ENVELOPE_JWS,
  type NotationConfig,
  type NotationRevocationConfig,
  type NotationTrustPolicy,
  type NotationTrustStore,
  type ParsedEnvelope,
  SIGNATURE_ARTIFACT_TYPE,
} from "./types.js";
import {
  CheckFailure,
  type Finding,
  verifyAuthenticity,
  verifyAuthenticTimestamp,
  verifyExpiry,
  verifyIntegrity,
  verifyRevocation,
  verifyTargetArtifact,
  verifyTrustedIdentity,
} from "./validations.js";
import type { Cert } from "./x509.js";

export interface VerifyOptions {
  verifierName: string;
  now?: Date;
  signal?: AbortSignal;
  fetch?: typeof fetch;
  revocation?: NotationRevocationConfig;
  crlCache?: CrlCache;
  /** Carried into the SignatureCheck. */
  artifactDigest?: string;
  artifactType?: string;
}

const MAX_SIGNATURES = 32;
const MAX_ENVELOPE_BYTES = 4 * 1024 * 1024;

/** Verifies one envelope for `subject` under `policy`. Verdicts are returned, never thrown. */
export async function verifyEnvelope(
  envelope: Uint8Array,
  mediaType: string,
  subject: Descriptor,
  policy: NotationTrustPolicy,
  stores: NotationTrustStore[],
  opts: VerifyOptions,
): Promise<SignatureCheck> {
  const base: SignatureCheck = {
    verifier: opts.verifierName,
    kind: "notation",
    ...(opts.artifactDigest ? { artifactDigest: opts.artifactDigest } : {}),
    ...(opts.artifactType ? { artifactType: opts.artifactType } : {}),
    result: "failed",
    reason: "",
  };
  let level: Enforcement;
  try {
    level = enforcement(policy);
  } catch (e) {
    return { ...base, result: "error", check: "trustPolicy", reason: toEngineError(e).message };
  }
  if (policy.signatureVerification.level === "skip")
    return {
      ...base,
      result: "passed",
      check: "skip",
      reason: `trust policy "${policy.name}" skips verification`,
    };

  const ctx = { ...opts, now: opts.now ?? new Date() };
  const warnings: string[] = [];
  /** Applies the level's action to a validation that did not hold. */
  const apply = (f: Finding | undefined) => {
    if (f === undefined || level[f.type] === "skip") return;
    if (level[f.type] === "log") warnings.push(`${f.type}: ${f.reason}`);
    else throw new CheckFailure(f.type, f.reason, f.indeterminate ? "error" : "failed", f.details);
  };
  let env: ParsedEnvelope | undefined;
  let leaf: Cert | undefined;
  try {
    opts.signal?.throwIfAborted();
    const integ = verifyIntegrity(envelope, mediaType);
    env = integ.env;
    const chain = integ.chain;
    leaf = chain[0]!;
    verifyTargetArtifact(env, subject);
    apply(verifyAuthenticity(env, chain, policy, stores));
    apply(verifyTrustedIdentity(policy, leaf));
    apply(verifyExpiry(env, ctx.now));
    apply(await verifyAuthenticTimestamp(env, chain, policy, stores, ctx));
    if (level.revocation !== "skip" && opts.revocation?.enabled)
      apply(await verifyRevocation(env, chain, ctx));
  } catch (e) {
    if (isEngineError(e) && e.code === "CANCELLED") throw e;
    if (opts.signal?.aborted) throw new EngineError("CANCELLED", "verification was cancelled", { cause: e });
    const f =
      e instanceof CheckFailure
        ? e
        : isEngineError(e) && e.code === "INVALID_POLICY"
          ? new CheckFailure("trustPolicy", e.message, "error")
          : new CheckFailure("internal", toEngineError(e).message, "error");
    return {
      ...base,
      result: f.result,
      check: f.check,
      reason: f.message,
      ...signerFields(env, leaf),
      ...(warnings.length ? { warnings } : {}),
      ...(f.details ? { details: f.details } : {}),
    };
  }
  return {
    ...base,
    result: "passed",
    check: "all",
    reason: `Notary Project signature by "${leaf!.subjectString}" verified under trust policy "${policy.name}" (${policy.signatureVerification.level})`,
    ...signerFields(env, leaf),
    ...(warnings.length ? { warnings } : {}),
    details: {
      format: env!.format,
      signingScheme: env!.signingScheme,
      timestamped: env!.timestampToken !== undefined,
    },
  };
}

function signerFields(env: ParsedEnvelope | undefined, leaf: Cert | undefined): Partial<SignatureCheck> {
  return {
    ...(leaf ? { signer: leaf.subjectString, issuer: leaf.issuerString } : {}),
    ...(env ? { signingTime: env.signingTime.toISOString() } : {}),
  };
}

function isNotarySignature(a: DiscoveredArtifact): boolean {
  return (
    a.artifactType === SIGNATURE_ARTIFACT_TYPE ||
    a.manifest.artifactType === SIGNATURE_ARTIFACT_TYPE ||
    a.manifest.config?.mediaType === SIGNATURE_ARTIFACT_TYPE
  );
}

/** Verifies every Notary Project signature artifact found for the subject. */
export async function verifyNotation(
  source: ArtifactSource,
  cfg: NotationConfig,
  opts: { verifierName: string; now?: Date; signal?: AbortSignal; fetch?: typeof fetch; crlCache?: CrlCache },
): Promise<SignatureCheck[]> {
  const base = { verifier: opts.verifierName, kind: "notation" as const };
  const policy = selectPolicy(cfg.trustPolicies, source.subject.reference);
  if (!policy)
    return [
      {
        ...base,
        result: "failed",
        check: "trustPolicy",
        reason: `no Notary Project trust policy applies to ${source.subject.reference}`,
      },
    ];
  if (policy.signatureVerification.level === "skip")
    return [
      {
        ...base,
        result: "passed",
        check: "skip",
        reason: `trust policy "${policy.name}" skips verification`,
      },
    ];
  const sigs = source.artifacts.filter(isNotarySignature);
  if (sigs.length === 0)
    return [{ ...base, result: "failed", check: "signature", reason: "no Notary Project signature found" }];
  if (sigs.length > MAX_SIGNATURES)
    return [
      {
        ...base,
        result: "error",
        check: "signature",
        reason: `more than ${MAX_SIGNATURES} Notary Project signatures`,
      },
    ];
  const out: SignatureCheck[] = [];
  for (const art of sigs) {
    opts.signal?.throwIfAborted();
    const a = { ...base, artifactDigest: art.digest, artifactType: SIGNATURE_ARTIFACT_TYPE };
    const m = art.manifest;
    if (m.subject && m.subject.digest !== source.subject.digest) {
      out.push({
        ...a,
        result: "failed",
        check: "subject",
        reason: `signature manifest refers to ${m.subject.digest}`,
      });
      continue;
    }
    const subjectDesc = source.subject.descriptor ?? m.subject;
    if (!subjectDesc) {
      out.push({
        ...a,
        result: "error",
        check: "subject",
        reason: "subject descriptor (media type, size) is unknown",
      });
      continue;
    }
    const layer = m.layers?.length === 1 ? m.layers[0] : undefined;
    if (!layer || (layer.mediaType !== ENVELOPE_JWS && layer.mediaType !== ENVELOPE_COSE)) {
      out.push({
        ...a,
        result: "failed",
        check: "integrity",
        reason: "signature manifest must have one JWS or COSE layer",
      });
      continue;
    }
    if (layer.size > MAX_ENVELOPE_BYTES) {
      out.push({
        ...a,
        result: "failed",
        check: "integrity",
        reason: `signature envelope of ${layer.size} bytes is too large`,
      });
      continue;
    }
    let bytes: Uint8Array;
    try {
      bytes = await source.fetchBlob(layer, opts.signal);
    } catch (e) {
      const err = toEngineError(e);
      if (err.code === "CANCELLED") throw err;
      out.push({ ...a, result: "error", check: "fetch", reason: err.message, details: { code: err.code } });
      continue;
    }
    out.push(
      await verifyEnvelope(bytes, layer.mediaType, subjectDesc, policy, cfg.trustStores, {
        ...opts,
        ...(cfg.revocation ? { revocation: cfg.revocation } : {}),
        artifactDigest: art.digest,
        artifactType: SIGNATURE_ARTIFACT_TYPE,
      }),
    );
  }
  return out;
}
