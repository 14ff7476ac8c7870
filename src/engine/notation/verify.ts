// Notary Project signature verification: one envelope against one trust policy, in the
// order notation-go uses (integrity → authenticity → trusted identity → expiry →
// authentic timestamp → revocation), each check enforced / logged / skipped per level.
import { constants, verify as cryptoVerify } from "node:crypto";
import { EngineError, isEngineError, toEngineError } from "../errors.js";
import type { ArtifactSource, Descriptor, DiscoveredArtifact, SignatureCheck } from "../types.js";
import { algorithmForKey, CertificateError, validateChain } from "./chain.js";
import { parseCose } from "./cose.js";
import { type CrlCache, checkChainRevocation, defaultCrlCache } from "./crl.js";
import { parseJws } from "./jws.js";
import { checkTrustedIdentity, type Enforcement, enforcement, selectPolicy, splitStore } from "./policy.js";
import { TimestampError, verifyTimestampToken } from "./timestamp.js";
import {
  ENVELOPE_COSE,
  ENVELOPE_JWS,
  type NotationConfig,
  type NotationRevocationConfig,
  type NotationTrustPolicy,
  type NotationTrustStore,
  PAYLOAD_TYPE,
  type ParsedEnvelope,
  SIGNATURE_ARTIFACT_TYPE,
  type SignatureAlgorithm,
  type TrustStoreType,
  type ValidationType,
} from "./types.js";
import { bytesEqual, type Cert, isIssuedBy, isSelfSigned, parseCert, parsePemCerts } from "./x509.js";

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

/** A failed check: which one and why. Thrown inside verifyEnvelope, turned into a SignatureCheck. */
class CheckFailure extends Error {
  constructor(
    readonly check: string,
    message: string,
    readonly result: "failed" | "error" = "failed",
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

const storeCertCache = new WeakMap<NotationTrustStore, Cert[]>();

function storeCerts(store: NotationTrustStore): Cert[] {
  let certs = storeCertCache.get(store);
  if (!certs) {
    certs = store.certificates.flatMap((pem) => parsePemCerts(pem));
    storeCertCache.set(store, certs);
  }
  return certs;
}

/**
 * Certificates of the policy's named stores of one type, loaded as notation-go loads them: a
 * named store that does not exist or holds no certificates, a certificate in it that is
 * neither a CA nor self-signed, or a non-root certificate in a tsa store makes the load fail
 * (a string saying why), and the caller applies the level's action for the check at hand.
 */
function trustedCerts(
  policy: NotationTrustPolicy,
  stores: NotationTrustStore[],
  type: TrustStoreType,
): Cert[] | string {
  const out: Cert[] = [];
  const seen = new Set<string>();
  for (const ref of policy.trustStores ?? []) {
    if (seen.has(ref)) continue;
    seen.add(ref);
    const [t, name] = splitStore(ref, policy.name);
    if (t !== type) continue;
    const store = stores.find((s) => s.type === type && s.name === name);
    if (!store)
      return `the trust store "${name}" of type "${type}" named by trust policy "${policy.name}" does not exist`;
    let certs: Cert[];
    try {
      certs = storeCerts(store);
    } catch (e) {
      return `trust store "${ref}" cannot be read: ${toEngineError(e).message}`;
    }
    if (certs.length === 0)
      return `no x509 certificates were found in trust store "${name}" of type "${type}"`;
    for (const c of certs) {
      const selfSigned = (() => {
        try {
          return c.x509.verify(c.publicKey);
        } catch {
          return false;
        }
      })();
      if (!c.basicConstraints?.ca && !selfSigned)
        return `certificate "${c.subjectString}" in trust store "${ref}" is not a CA certificate or self-signed signing certificate`;
      if (type === "tsa" && !(selfSigned && bytesEqual(c.rawSubject, c.rawIssuer)))
        return `certificate "${c.subjectString}" in trust store "${ref}" is not a root CA certificate`;
    }
    out.push(...certs);
  }
  return out;
}

const HASH_OF: Record<SignatureAlgorithm, { hash: string; salt: number; ec: boolean }> = {
  PS256: { hash: "sha256", salt: 32, ec: false },
  PS384: { hash: "sha384", salt: 48, ec: false },
  PS512: { hash: "sha512", salt: 64, ec: false },
  ES256: { hash: "sha256", salt: 0, ec: true },
  ES384: { hash: "sha384", salt: 0, ec: true },
  ES512: { hash: "sha512", salt: 0, ec: true },
};

function verifySignatureBytes(env: ParsedEnvelope, leaf: Cert): boolean {
  const a = HASH_OF[env.algorithm];
  try {
    return a.ec
      ? cryptoVerify(
          a.hash,
          env.signedBytes,
          { key: leaf.publicKey, dsaEncoding: "ieee-p1363" },
          env.signature,
        )
      : cryptoVerify(
          a.hash,
          env.signedBytes,
          { key: leaf.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: a.salt },
          env.signature,
        );
  } catch {
    return false;
  }
}

function parseEnvelope(bytes: Uint8Array, mediaType: string): ParsedEnvelope {
  if (mediaType === ENVELOPE_JWS) return parseJws(bytes);
  if (mediaType === ENVELOPE_COSE) return parseCose(bytes);
  throw new EngineError(
    "UNSUPPORTED",
    `signature envelope media type ${JSON.stringify(mediaType)} is not supported`,
  );
}

/** Integrity: parse, certificate requirements, key ↔ algorithm, the signature itself, payload type. */
function checkIntegrity(bytes: Uint8Array, mediaType: string): { env: ParsedEnvelope; chain: Cert[] } {
  let env: ParsedEnvelope;
  let chain: Cert[];
  try {
    env = parseEnvelope(bytes, mediaType);
    chain = env.certChain.map((der) => parseCert(der));
  } catch (e) {
    throw new CheckFailure(
      "integrity",
      `unable to parse the signature envelope: ${toEngineError(e).message}`,
    );
  }
  const leaf = chain[0]!;
  try {
    validateChain(chain, "codeSigning");
    const expected = algorithmForKey(leaf);
    if (expected !== env.algorithm)
      throw new CertificateError(
        `envelope algorithm ${env.algorithm} does not match the ${expected} the signing key requires`,
        leaf.subjectString,
      );
  } catch (e) {
    if (e instanceof CertificateError)
      throw new CheckFailure("integrity", `certificate chain is invalid: ${e.message}`, "failed", {
        certificate: e.subject,
      });
    throw e;
  }
  if (!verifySignatureBytes(env, leaf))
    throw new CheckFailure("integrity", `signature does not verify with the key of "${leaf.subjectString}"`);
  if (env.contentType !== PAYLOAD_TYPE)
    throw new CheckFailure(
      "integrity",
      `payload content type ${JSON.stringify(env.contentType)} is not supported`,
    );
  return { env, chain };
}

function checkTargetArtifact(env: ParsedEnvelope, subject: Descriptor): void {
  let target: unknown;
  try {
    target = (JSON.parse(Buffer.from(env.payload).toString("utf8")) as { targetArtifact?: unknown })
      .targetArtifact;
  } catch {
    throw new CheckFailure("targetArtifact", "signed payload is not JSON");
  }
  const t = target as Partial<Descriptor> | undefined;
  if (typeof t !== "object" || t === null)
    throw new CheckFailure("targetArtifact", "signed payload has no targetArtifact");
  if (t.digest !== subject.digest || t.mediaType !== subject.mediaType || t.size !== subject.size)
    throw new CheckFailure(
      "targetArtifact",
      `signature is for ${String(t.mediaType)} ${String(t.digest)} (${String(t.size)} bytes), not for ${subject.mediaType} ${subject.digest} (${subject.size} bytes)`,
    );
}

async function checkTimestamp(
  env: ParsedEnvelope,
  chain: Cert[],
  policy: NotationTrustPolicy,
  stores: NotationTrustStore[],
  now: Date,
  opts: VerifyOptions,
): Promise<string | undefined> {
  if (!env.timestampToken) return "no timestamp countersignature was found in the signature envelope";
  let tok: ReturnType<typeof verifyTimestampToken>;
  try {
    tok = verifyTimestampToken(env.timestampToken, env.signature);
  } catch (e) {
    if (e instanceof TimestampError || isEngineError(e))
      return `timestamp countersignature is invalid: ${e.message}`;
    throw e;
  }
  const tsaRoots = trustedCerts(policy, stores, "tsa");
  if (typeof tsaRoots === "string") return `failed to load tsa trust store: ${tsaRoots}`;
  if (tsaRoots.length === 0) return "no trusted TSA certificate found in trust store";
  // Build the TSA chain from the token's certificates and the tsa store.
  const pool = [...tok.certs, ...tsaRoots];
  const tsaChain: Cert[] = [tok.signer];
  while (tsaChain.length < 10) {
    const cur = tsaChain[tsaChain.length - 1]!;
    if (isSelfSigned(cur)) break;
    const parent = pool.find((p) => p !== cur && isIssuedBy(cur, p));
    if (!parent)
      return `timestamp signing certificate "${cur.subjectString}" does not chain to a trusted TSA root`;
    tsaChain.push(parent);
  }
  if (!tsaChain.some((c) => tsaRoots.some((r) => bytesEqual(r.der, c.der))))
    return `timestamp certificate chain of "${tok.signer.subjectString}" does not lead to the tsa trust store`;
  try {
    validateChain(tsaChain, "timeStamping", tok.genTime);
  } catch (e) {
    if (e instanceof CertificateError) return `timestamping certificate chain is invalid: ${e.message}`;
    throw e;
  }
  for (const c of chain) {
    if (tok.lower < c.notBefore)
      return `timestamp ${tok.genTime.toISOString()} can be before certificate "${c.subjectString}" validity period`;
    if (tok.upper > c.notAfter)
      return `timestamp ${tok.genTime.toISOString()} can be after certificate "${c.subjectString}" validity period (expired ${c.notAfter.toISOString()})`;
  }
  if (opts.revocation?.enabled) {
    const r = await checkChainRevocation(
      tsaChain,
      revocationOpts(opts, now),
      opts.crlCache ?? defaultCrlCache,
    );
    if (r.status !== "ok") return `timestamping ${r.reason}`;
  }
  return undefined;
}

function revocationOpts(opts: VerifyOptions, now: Date, authenticTime?: Date) {
  return {
    now,
    ...(opts.revocation?.timeoutMs !== undefined ? { timeoutMs: opts.revocation.timeoutMs } : {}),
    ...(opts.revocation?.maxCrlBytes !== undefined ? { maxCrlBytes: opts.revocation.maxCrlBytes } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    ...(authenticTime ? { authenticTime } : {}),
  };
}

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

  const now = opts.now ?? new Date();
  const warnings: string[] = [];
  /** Applies the level's action to a failed validation. */
  const outcome = (type: ValidationType, failure: string | undefined, details?: Record<string, unknown>) => {
    if (failure === undefined || level[type] === "skip") return;
    if (level[type] === "log") warnings.push(`${type}: ${failure}`);
    else throw new CheckFailure(type, failure, "failed", details);
  };
  let env: ParsedEnvelope | undefined;
  let leaf: Cert | undefined;
  try {
    opts.signal?.throwIfAborted();
    const integ = checkIntegrity(envelope, mediaType);
    env = integ.env;
    const chain = integ.chain;
    leaf = chain[0]!;
    checkTargetArtifact(env, subject);

    // Authenticity: a certificate of the chain is in the named store of the scheme's type.
    const storeType: TrustStoreType = env.signingScheme === "notary.x509" ? "ca" : "signingAuthority";
    const trusted = trustedCerts(policy, stores, storeType);
    if (typeof trusted === "string") outcome("authenticity", trusted);
    else if (trusted.length === 0)
      outcome(
        "authenticity",
        `no trusted certificates in the "${storeType}" trust stores of policy "${policy.name}"`,
      );
    else if (!chain.some((c) => trusted.some((t) => bytesEqual(t.der, c.der))))
      outcome(
        "authenticity",
        `certificate chain of "${leaf.subjectString}" (root "${chain[chain.length - 1]!.subjectString}") does not lead to a certificate in the trust stores of policy "${policy.name}"`,
        { certificate: chain[chain.length - 1]!.subjectString },
      );
    outcome("authenticity", checkTrustedIdentity(policy, leaf), { certificate: leaf.subjectString });

    if (env.expiry && now.getTime() >= env.expiry.getTime())
      outcome("expiry", `signature expired at ${env.expiry.toISOString()}`);

    // Authentic timestamp.
    if (env.signingScheme === "notary.x509") {
      const tsa = (policy.trustStores ?? []).some((s) => s.startsWith("tsa:"));
      const anyExpired = chain.some((c) => now > c.notAfter);
      const doTs = tsa && (policy.signatureVerification.verifyTimestamp !== "afterCertExpiry" || anyExpired);
      if (doTs) {
        outcome("authenticTimestamp", await checkTimestamp(env, chain, policy, stores, now, opts));
      } else {
        const bad = chain.find((c) => now < c.notBefore || now > c.notAfter);
        if (bad)
          outcome(
            "authenticTimestamp",
            now < bad.notBefore
              ? `certificate "${bad.subjectString}" is not valid until ${bad.notBefore.toISOString()}`
              : `certificate "${bad.subjectString}" expired at ${bad.notAfter.toISOString()}`,
            { certificate: bad.subjectString },
          );
      }
    } else {
      const bad = chain.find((c) => env!.signingTime < c.notBefore || env!.signingTime > c.notAfter);
      if (bad)
        outcome(
          "authenticTimestamp",
          `certificate "${bad.subjectString}" was not valid at the authentic signing time ${env.signingTime.toISOString()}`,
          { certificate: bad.subjectString },
        );
    }

    // Revocation (CRL): unknown status is "could not complete" when enforced.
    if (level.revocation !== "skip" && opts.revocation?.enabled) {
      const authenticTime =
        env.signingScheme === "notary.x509.signingAuthority" ? env.signingTime : undefined;
      const r = await checkChainRevocation(
        chain,
        revocationOpts(opts, now, authenticTime),
        opts.crlCache ?? defaultCrlCache,
      );
      if (r.status === "revoked") outcome("revocation", r.reason, { certificate: r.subject });
      else if (r.status === "unknown") {
        if (level.revocation === "log") warnings.push(`revocation: ${r.reason}`);
        else
          throw new CheckFailure("revocation", r.reason ?? "revocation status unknown", "error", {
            code: "REVOCATION_UNAVAILABLE",
            certificate: r.subject,
          });
      }
    }
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
