// The trust-policy validations of one Notary Project signature, one function per validation
// type as notation-go's verifier has them: integrity, authenticity (trust store, then trusted
// identity), expiry, authentic timestamp, revocation. Integrity and the target artifact are
// always enforced and throw a CheckFailure; the others return a Finding (or nothing), and the
// orchestrator (verify.ts) applies the level's action (enforce / log / skip) to it.
import { constants, verify as cryptoVerify } from "node:crypto";
import { EngineError, isEngineError, toEngineError } from "../errors.js";
import type { CheckName, Descriptor } from "../types.js";
import { algorithmForKey, CertificateError, validateChain } from "./chain.js";
import { parseCose } from "./cose.js";
import { type CrlCache, checkChainRevocation, defaultCrlCache } from "./crl.js";
import { parseJws } from "./jws.js";
import { checkTrustedIdentity } from "./policy.js";
import { TimestampError, verifyTimestampToken } from "./timestamp.js";
import { trustedCerts } from "./truststore.js";
import {
  ENVELOPE_COSE,
  ENVELOPE_JWS,
  type NotationRevocationConfig,
  type NotationTrustPolicy,
  type NotationTrustStore,
  PAYLOAD_TYPE,
  type ParsedEnvelope,
  type SignatureAlgorithm,
  type TrustStoreType,
  type ValidationType,
} from "./types.js";
import { bytesEqual, type Cert, isIssuedBy, isSelfSigned, parseCert } from "./x509.js";

/** A failed check: which one and why. Thrown inside verifyEnvelope, turned into a SignatureCheck. */
export class CheckFailure extends Error {
  constructor(
    readonly check: CheckName,
    message: string,
    readonly result: "failed" | "error" = "failed",
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** A validation that did not hold; its level's action decides what it does to the verdict. */
export interface Finding {
  type: ValidationType;
  reason: string;
  details?: Record<string, unknown>;
  /** The validation could not be completed (revocation status unknown): "error", not "failed". */
  indeterminate?: boolean;
}

/** What the time- and network-dependent validations need beyond the envelope and policy. */
export interface ValidationContext {
  now: Date;
  signal?: AbortSignal;
  fetch?: typeof fetch;
  revocation?: NotationRevocationConfig;
  crlCache?: CrlCache;
}

function finding(type: ValidationType, reason: string | undefined, details?: Record<string, unknown>) {
  return reason === undefined ? undefined : { type, reason, ...(details ? { details } : {}) };
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

/** Integrity (always enforced): parse, certificate requirements, key ↔ algorithm, the signature, payload type. */
export function verifyIntegrity(
  bytes: Uint8Array,
  mediaType: string,
): { env: ParsedEnvelope; chain: Cert[] } {
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

/** The signed payload names this subject (digest, media type, size). Always enforced. */
export function verifyTargetArtifact(env: ParsedEnvelope, subject: Descriptor): void {
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

/** Authenticity, first half: a certificate of the chain is in the named stores of the scheme's type. */
export function verifyAuthenticity(
  env: ParsedEnvelope,
  chain: Cert[],
  policy: NotationTrustPolicy,
  stores: NotationTrustStore[],
): Finding | undefined {
  const storeType: TrustStoreType = env.signingScheme === "notary.x509" ? "ca" : "signingAuthority";
  const trusted = trustedCerts(policy, stores, storeType);
  if (typeof trusted === "string") return finding("authenticity", trusted);
  if (trusted.length === 0)
    return finding(
      "authenticity",
      `no trusted certificates in the "${storeType}" trust stores of policy "${policy.name}"`,
    );
  const leaf = chain[0]!;
  const root = chain[chain.length - 1]!;
  if (!chain.some((c) => trusted.some((t) => bytesEqual(t.der, c.der))))
    return finding(
      "authenticity",
      `certificate chain of "${leaf.subjectString}" (root "${root.subjectString}") does not lead to a certificate in the trust stores of policy "${policy.name}"`,
      { certificate: root.subjectString },
    );
  return undefined;
}

/** Authenticity, second half: the signing certificate's subject is a trusted identity. */
export function verifyTrustedIdentity(policy: NotationTrustPolicy, leaf: Cert): Finding | undefined {
  return finding("authenticity", checkTrustedIdentity(policy, leaf), { certificate: leaf.subjectString });
}

/** Expiry: the envelope's own expiry time, if it has one. */
export function verifyExpiry(env: ParsedEnvelope, now: Date): Finding | undefined {
  if (env.expiry && now.getTime() >= env.expiry.getTime())
    return finding("expiry", `signature expired at ${env.expiry.toISOString()}`);
  return undefined;
}

/**
 * Authentic timestamp. notary.x509: with a tsa store (and verifyTimestamp "always", or a
 * certificate already expired) the RFC 3161 countersignature must verify and fall within
 * every certificate's validity; otherwise the chain must be valid now. signingAuthority: the
 * chain must have been valid at the authentic signing time.
 */
export async function verifyAuthenticTimestamp(
  env: ParsedEnvelope,
  chain: Cert[],
  policy: NotationTrustPolicy,
  stores: NotationTrustStore[],
  ctx: ValidationContext,
): Promise<Finding | undefined> {
  const now = ctx.now;
  if (env.signingScheme === "notary.x509") {
    const tsa = (policy.trustStores ?? []).some((s) => s.startsWith("tsa:"));
    const anyExpired = chain.some((c) => now > c.notAfter);
    const doTs = tsa && (policy.signatureVerification.verifyTimestamp !== "afterCertExpiry" || anyExpired);
    if (doTs)
      return finding(
        "authenticTimestamp",
        await verifyTimestampCountersignature(env, chain, policy, stores, ctx),
      );
    const bad = chain.find((c) => now < c.notBefore || now > c.notAfter);
    if (!bad) return undefined;
    return finding(
      "authenticTimestamp",
      now < bad.notBefore
        ? `certificate "${bad.subjectString}" is not valid until ${bad.notBefore.toISOString()}`
        : `certificate "${bad.subjectString}" expired at ${bad.notAfter.toISOString()}`,
      { certificate: bad.subjectString },
    );
  }
  const bad = chain.find((c) => env.signingTime < c.notBefore || env.signingTime > c.notAfter);
  if (!bad) return undefined;
  return finding(
    "authenticTimestamp",
    `certificate "${bad.subjectString}" was not valid at the authentic signing time ${env.signingTime.toISOString()}`,
    { certificate: bad.subjectString },
  );
}

/** Revocation (CRL): a revoked certificate fails; an unknown status is indeterminate. */
export async function verifyRevocation(
  env: ParsedEnvelope,
  chain: Cert[],
  ctx: ValidationContext,
): Promise<Finding | undefined> {
  const authenticTime = env.signingScheme === "notary.x509.signingAuthority" ? env.signingTime : undefined;
  const r = await checkChainRevocation(
    chain,
    revocationOpts(ctx, authenticTime),
    ctx.crlCache ?? defaultCrlCache,
  );
  if (r.status === "revoked") return finding("revocation", r.reason, { certificate: r.subject });
  if (r.status === "unknown")
    return {
      type: "revocation",
      reason: r.reason ?? "revocation status unknown",
      indeterminate: true,
      details: { code: "REVOCATION_UNAVAILABLE", certificate: r.subject },
    };
  return undefined;
}

/** The RFC 3161 countersignature: token, TSA chain to the tsa store, validity window, revocation. */
async function verifyTimestampCountersignature(
  env: ParsedEnvelope,
  chain: Cert[],
  policy: NotationTrustPolicy,
  stores: NotationTrustStore[],
  ctx: ValidationContext,
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
  if (ctx.revocation?.enabled) {
    const r = await checkChainRevocation(tsaChain, revocationOpts(ctx), ctx.crlCache ?? defaultCrlCache);
    if (r.status !== "ok") return `timestamping ${r.reason}`;
  }
  return undefined;
}

function revocationOpts(ctx: ValidationContext, authenticTime?: Date) {
  return {
    now: ctx.now,
    ...(ctx.revocation?.timeoutMs !== undefined ? { timeoutMs: ctx.revocation.timeoutMs } : {}),
    ...(ctx.revocation?.maxCrlBytes !== undefined ? { maxCrlBytes: ctx.revocation.maxCrlBytes } : {}),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    ...(ctx.fetch ? { fetch: ctx.fetch } : {}),
    ...(authenticTime ? { authenticTime } : {}),
  };
}
