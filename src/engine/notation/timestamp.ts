// RFC 3161 timestamp tokens (CMS SignedData over TSTInfo) as Notary Project countersignatures:
// the token signs a hash of the envelope's signature bytes.
//
// Decision: KEEP (issue 19, `npx tsx bench/codecs.ts`). Notary Project envelopes carry the
// TimeStampToken (a CMS ContentInfo); @sigstore/core's RFC3161Timestamp parses a whole
// TimeStampResp and fails on a bare token (TypeError), so it would need a synthetic wrapper.
// Parse + verify here ~0.4–1.4 ms, the same order as @sigstore/core's parse + verify of the
// response (~0.8–1.4 ms); pkijs takes ~5–9 ms just to parse and accepts a non-minimal length.
import { constants, createHash, verify as cryptoVerify } from "node:crypto";
import {
  type Asn1,
  children,
  explicit,
  integerHex,
  isContext,
  isUniversal,
  malformed,
  parseDer,
  readAlgorithm,
  readInteger,
  readOctets,
  readOid,
  readTime,
  retag,
  seq,
  set,
  TAG,
} from "./asn1.js";
import { bytesEqual, type Cert, parseCert } from "./x509.js";

const OID_SIGNED_DATA = "1.2.840.113549.1.7.2";
const OID_TST_INFO = "1.2.840.113549.1.9.16.1.4";
const OID_CONTENT_TYPE = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4";
const OID_SIGNING_CERT_V2 = "1.2.840.113549.1.9.16.2.47";
const OID_BASELINE_POLICY = "0.4.0.2023.1.1";

const HASHES: Record<string, string> = {
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
};

// signature algorithm OID → hash (undefined: take it from the digestAlgorithm)
const SIG_ALGS: Record<string, { kind: "rsa" | "ecdsa" | "pss"; hash?: string }> = {
  "1.2.840.113549.1.1.1": { kind: "rsa" },
  "1.2.840.113549.1.1.11": { kind: "rsa", hash: "sha256" },
  "1.2.840.113549.1.1.12": { kind: "rsa", hash: "sha384" },
  "1.2.840.113549.1.1.13": { kind: "rsa", hash: "sha512" },
  "1.2.840.113549.1.1.10": { kind: "pss" },
  "1.2.840.10045.4.3.2": { kind: "ecdsa", hash: "sha256" },
  "1.2.840.10045.4.3.3": { kind: "ecdsa", hash: "sha384" },
  "1.2.840.10045.4.3.4": { kind: "ecdsa", hash: "sha512" },
};

export interface TimestampToken {
  genTime: Date;
  /** Accuracy in milliseconds (RFC 3161 §2.4.2; baseline policy without accuracy = 1 s). */
  accuracyMs: number;
  lower: Date;
  upper: Date;
  signer: Cert;
  /** Every certificate carried in the token (for chain building). */
  certs: Cert[];
}

/** A token that parses but does not hold up: a verdict, with the reason. */
export class TimestampError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TimestampError";
  }
}

function hashOf(oid: string, what: string): string {
  const h = HASHES[oid];
  if (!h) throw new TimestampError(`${what}: unsupported hash algorithm ${oid}`);
  return h;
}

function parseAccuracy(node: Asn1): number {
  let ms = 0;
  for (const f of children(node)) {
    if (isUniversal(f, TAG.INTEGER)) ms += Number(readInteger(f, "accuracy.seconds")) * 1000;
    else if (isContext(f, 0)) ms += parseIntContent(f.content);
    else if (isContext(f, 1)) ms += parseIntContent(f.content) / 1000;
    else throw malformed("accuracy: unexpected field");
  }
  if (!Number.isFinite(ms) || ms < 0) throw malformed("accuracy out of range");
  return ms;
}

function parseIntContent(c: Uint8Array): number {
  if (c.length === 0 || c.length > 4) throw malformed("accuracy field length");
  let v = 0;
  for (const b of c) v = v * 256 + b;
  if (v < 1 || v > 999) throw malformed("accuracy millis/micros must be 1..999");
  return v;
}

/**
 * Parses the token and checks its own CMS signature and the message imprint over
 * `signature`. Chain trust is the caller's job (it owns the trust stores).
 */
export function verifyTimestampToken(tokenDer: Uint8Array, signature: Uint8Array): TimestampToken {
  if (tokenDer.length > 256 * 1024) throw malformed("timestamp token larger than 256 KiB");
  const ci = seq(parseDer(tokenDer), "ContentInfo");
  if (readOid(ci[0], "contentType") !== OID_SIGNED_DATA)
    throw malformed("timestamp token is not CMS SignedData");
  if (!isContext(ci[1], 0)) throw malformed("ContentInfo: missing [0] content");
  const sd = seq(explicit(ci[1]!, "content"), "SignedData");
  let i = 0;
  readInteger(sd[i++], "SignedData.version");
  set(sd[i++], "digestAlgorithms");
  const eci = seq(sd[i++], "encapContentInfo");
  if (readOid(eci[0], "eContentType") !== OID_TST_INFO)
    throw malformed("encapsulated content is not TSTInfo");
  if (!isContext(eci[1], 0)) throw malformed("encapContentInfo: missing eContent");
  const eContent = readOctets(explicit(eci[1]!, "eContent"), "eContent");
  const certs: Cert[] = [];
  if (isContext(sd[i], 0)) {
    for (const c of children(sd[i++]!)) if (isUniversal(c, TAG.SEQUENCE)) certs.push(parseCert(c.der));
    if (certs.length > 10) throw malformed("too many certificates in timestamp token");
  }
  if (isContext(sd[i], 1)) i++; // crls: not used
  const signerInfos = set(sd[i++], "signerInfos");
  if (i !== sd.length) throw malformed("SignedData: trailing fields");
  if (signerInfos.length !== 1) throw new TimestampError("timestamp token must have exactly one signer");

  // SignerInfo
  const si = seq(signerInfos[0], "SignerInfo");
  let j = 0;
  readInteger(si[j++], "SignerInfo.version");
  const sid = si[j++]!;
  const digestAlg = readAlgorithm(si[j++], "digestAlgorithm");
  const digestHash = hashOf(digestAlg.oid, "SignerInfo digestAlgorithm");
  if (!isContext(si[j], 0)) throw new TimestampError("timestamp token has no signed attributes");
  const signedAttrsNode = si[j++]!;
  const sigAlg = readAlgorithm(si[j++], "signatureAlgorithm");
  const sigValue = readOctets(si[j++], "signature");

  // Which certificate signed it: issuerAndSerialNumber or [0] subjectKeyIdentifier.
  let signer: Cert | undefined;
  if (isUniversal(sid, TAG.SEQUENCE)) {
    const [iss, ser] = seq(sid, "issuerAndSerialNumber");
    const serial = integerHex(ser, "serialNumber");
    signer = certs.find((c) => bytesEqual(c.rawIssuer, iss!.der) && c.serialHex === serial);
  } else if (isContext(sid, 0)) {
    signer = certs.find((c) => c.subjectKeyId && bytesEqual(c.subjectKeyId, sid.content));
  }
  if (!signer) throw new TimestampError("timestamp token does not carry its signing certificate");

  // Signed attributes: content type, message digest, ESS signing-certificate-v2.
  const attrs = new Map<string, Asn1[]>();
  for (const a of children(signedAttrsNode)) {
    const [t, vals] = seq(a, "Attribute");
    const oid = readOid(t, "attribute type");
    if (attrs.has(oid)) throw malformed(`duplicate signed attribute ${oid}`);
    attrs.set(oid, set(vals, "attribute values"));
  }
  const ct = attrs.get(OID_CONTENT_TYPE);
  if (ct?.length !== 1 || readOid(ct[0], "content-type attribute") !== OID_TST_INFO)
    throw new TimestampError("timestamp token content-type attribute is missing or not TSTInfo");
  const md = attrs.get(OID_MESSAGE_DIGEST);
  if (md?.length !== 1) throw new TimestampError("timestamp token message-digest attribute is missing");
  const expectDigest = createHash(digestHash).update(eContent).digest();
  if (!bytesEqual(readOctets(md[0], "message-digest"), expectDigest))
    throw new TimestampError("timestamp token message digest does not match its TSTInfo");
  const scv2 = attrs.get(OID_SIGNING_CERT_V2);
  if (scv2?.length !== 1) throw new TimestampError("timestamp token has no signing-certificate-v2 attribute");
  {
    const [essCerts] = seq(scv2[0], "SigningCertificateV2");
    const first = seq(essCerts, "ESSCertIDv2 list")[0];
    const idv2 = seq(first, "ESSCertIDv2");
    let k = 0;
    let h = "sha256";
    if (isUniversal(idv2[0]!, TAG.SEQUENCE)) h = hashOf(readAlgorithm(idv2[k++]).oid, "ESSCertIDv2");
    const certHash = readOctets(idv2[k], "certHash");
    if (!bytesEqual(certHash, createHash(h).update(signer.der).digest()))
      throw new TimestampError("signing-certificate-v2 does not identify the token's signing certificate");
  }

  // CMS signature over DER(SET OF signedAttrs).
  const signedBytes = retag(signedAttrsNode, 0x31);
  const alg = SIG_ALGS[sigAlg.oid];
  if (!alg) throw new TimestampError(`timestamp token signature algorithm ${sigAlg.oid} is not supported`);
  const hash = alg.hash ?? digestHash;
  let ok = false;
  try {
    if (alg.kind === "rsa") ok = cryptoVerify(hash, signedBytes, signer.publicKey, sigValue);
    else if (alg.kind === "ecdsa")
      ok = cryptoVerify(hash, signedBytes, { key: signer.publicKey, dsaEncoding: "der" }, sigValue);
    else
      ok = cryptoVerify(
        hash,
        signedBytes,
        {
          key: signer.publicKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_AUTO,
        },
        sigValue,
      );
  } catch {
    ok = false;
  }
  if (!ok) throw new TimestampError("timestamp token signature does not verify");

  // TSTInfo
  const tst = seq(parseDer(eContent), "TSTInfo");
  let t = 0;
  if (readInteger(tst[t++], "TSTInfo.version") !== 1n) throw malformed("TSTInfo version must be 1");
  const policy = readOid(tst[t++], "TSTInfo.policy");
  const [imprintAlg, imprintHash] = seq(tst[t++], "messageImprint");
  const imprintHashName = hashOf(readAlgorithm(imprintAlg).oid, "messageImprint");
  const hashed = readOctets(imprintHash, "hashedMessage");
  readInteger(tst[t++], "serialNumber");
  const genTime = readTime(tst[t++], "genTime");
  let accuracyMs: number | undefined;
  if (tst[t] && isUniversal(tst[t]!, TAG.SEQUENCE)) accuracyMs = parseAccuracy(tst[t++]!);
  if (accuracyMs === undefined) accuracyMs = policy === OID_BASELINE_POLICY ? 1000 : 0;
  if (!bytesEqual(hashed, createHash(imprintHashName).update(signature).digest()))
    throw new TimestampError("timestamp message imprint does not cover this signature");
  return {
    genTime,
    accuracyMs,
    lower: new Date(genTime.getTime() - accuracyMs),
    upper: new Date(genTime.getTime() + accuracyMs),
    signer,
    certs,
  };
}
