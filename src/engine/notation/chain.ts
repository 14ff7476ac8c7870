// Certificate requirements of the Notary Project signature specification
// ("Certificate Requirements"): ordered chain leaf → root, CA rules, leaf rules, key sizes.
import { EngineError } from "../errors.js";
import type { SignatureAlgorithm } from "./types.js";
import { type Cert, hasKeyUsage, isIssuedBy, isSelfSigned, KU, OID } from "./x509.js";

export type ChainPurpose = "codeSigning" | "timeStamping";

/** A certificate that breaks a requirement: a verdict about the envelope, not a malformed input. */
export class CertificateError extends Error {
  constructor(
    message: string,
    readonly subject: string,
  ) {
    super(message);
    this.name = "CertificateError";
  }
}

const BAD_CODESIGN_EKUS: Record<string, string> = {
  [OID.ekuAny]: "anyExtendedKeyUsage",
  [OID.ekuServerAuth]: "serverAuth",
  [OID.ekuClientAuth]: "clientAuth",
  [OID.ekuEmailProtection]: "emailProtection",
  [OID.ekuTimeStamping]: "timeStamping",
  [OID.ekuOcspSigning]: "OCSPSigning",
};

/** Signature algorithm the spec derives from the signing key (Algorithm Selection table). */
export function algorithmForKey(c: Cert): SignatureAlgorithm {
  if (c.keyType === "rsa") {
    if (c.keyBits === 2048) return "PS256";
    if (c.keyBits === 3072) return "PS384";
    if (c.keyBits === 4096) return "PS512";
    throw new CertificateError(
      `certificate with subject "${c.subjectString}": RSA key size ${c.keyBits} is not supported`,
      c.subjectString,
    );
  }
  if (c.keyType === "ec") {
    if (c.keyBits === 256) return "ES256";
    if (c.keyBits === 384) return "ES384";
    if (c.keyBits === 521) return "ES512";
    throw new CertificateError(
      `certificate with subject "${c.subjectString}": EC curve is not supported`,
      c.subjectString,
    );
  }
  throw new CertificateError(
    `certificate with subject "${c.subjectString}": unsupported key type`,
    c.subjectString,
  );
}

function fail(c: Cert, msg: string): never {
  throw new CertificateError(`certificate with subject "${c.subjectString}": ${msg}`, c.subjectString);
}

function checkKeyStrength(c: Cert): void {
  if (c.keyType === "rsa" && c.keyBits < 2048) fail(c, `RSA key of ${c.keyBits} bits is below 2048`);
  if (c.keyType === "ec" && c.keyBits < 256) fail(c, "EC key below 256 bits or unsupported curve");
  if (c.keyType === "other") fail(c, "unsupported public key type");
  if (c.sigAlgOid === OID.sha1WithRSA || c.sigAlgOid === OID.ecdsaWithSHA1)
    fail(c, "is signed with a SHA-1 algorithm, which is not allowed");
}

function checkLeaf(c: Cert, purpose: ChainPurpose): void {
  if (c.basicConstraints?.ca) fail(c, "leaf certificate must not be a CA (basicConstraints cA=true)");
  if (!c.keyUsage) fail(c, "key usage extension must be present");
  if (purpose === "codeSigning" && !c.keyUsage.critical)
    fail(c, "key usage extension must be marked critical");
  if (!hasKeyUsage(c, KU.digitalSignature)) fail(c, 'key usage must have "digitalSignature" set');
  const extra = (
    [
      ["keyEncipherment", KU.keyEncipherment],
      ["dataEncipherment", KU.dataEncipherment],
      ["keyAgreement", KU.keyAgreement],
      ["keyCertSign", KU.keyCertSign],
      ["cRLSign", KU.cRLSign],
      ["encipherOnly", KU.encipherOnly],
      ["decipherOnly", KU.decipherOnly],
    ] as const
  )
    .filter(([, b]) => hasKeyUsage(c, b))
    .map(([n]) => n);
  if (extra.length > 0) fail(c, `key usage must be "digitalSignature" only, found ${extra.join(", ")}`);
  if (purpose === "codeSigning") {
    for (const oid of c.extKeyUsage?.oids ?? []) {
      const name = BAD_CODESIGN_EKUS[oid];
      if (name) fail(c, `extended key usage must not contain ${name} (it is not a code signing certificate)`);
    }
  } else {
    const eku = c.extKeyUsage;
    if (eku?.oids.length !== 1 || eku.oids[0] !== OID.ekuTimeStamping)
      fail(c, "timestamping certificate must have timeStamping as its only extended key usage");
    if (!eku.critical) fail(c, "timestamping certificate must mark extended key usage critical");
  }
  checkKeyStrength(c);
  algorithmForKey(c);
}

function checkCa(c: Cert, purpose: ChainPurpose, depthBelow: number): void {
  const bc = c.basicConstraints;
  if (!bc?.ca) fail(c, "CA certificate must have basicConstraints with cA=true");
  if (bc.pathLen !== undefined && bc.pathLen < depthBelow)
    fail(c, `pathLenConstraint ${bc.pathLen} is smaller than the ${depthBelow} intermediate(s) below it`);
  if (!c.keyUsage) fail(c, "key usage extension must be present");
  if (purpose === "codeSigning" && !c.keyUsage.critical)
    fail(c, "key usage extension must be marked critical");
  if (!hasKeyUsage(c, KU.keyCertSign)) fail(c, 'CA key usage must have "keyCertSign" set');
  checkKeyStrength(c);
}

/**
 * Validates an ordered chain (leaf first, self-signed root last). A single self-signed
 * certificate is checked as a leaf. `at` (optional) is a time every certificate must be valid at.
 */
export function validateChain(chain: Cert[], purpose: ChainPurpose, at?: Date): void {
  if (chain.length === 0) throw new CertificateError("certificate chain is empty", "");
  if (at) {
    for (const c of chain) {
      if (at < c.notBefore || at > c.notAfter)
        fail(
          c,
          `was not valid at ${at.toISOString()} (valid ${c.notBefore.toISOString()} to ${c.notAfter.toISOString()})`,
        );
    }
  }
  if (chain.length === 1) {
    const c = chain[0]!;
    if (!isSelfSigned(c)) fail(c, "a single-certificate chain must be self-signed");
    checkLeaf(c, purpose);
    return;
  }
  chain.forEach((c, i) => {
    if (i === chain.length - 1) {
      if (!isSelfSigned(c)) fail(c, "the chain must end with a self-signed root certificate");
    } else {
      if (isSelfSigned(c))
        fail(
          c,
          i === 0 ? "leaf certificate must not be self-signed" : "intermediate certificate is self-signed",
        );
      const parent = chain[i + 1]!;
      if (!isIssuedBy(c, parent)) fail(c, `is not issued by "${parent.subjectString}"`);
    }
    if (i === 0) checkLeaf(c, purpose);
    else checkCa(c, purpose, i - 1);
  });
}

/** Wraps CertificateError into the verdict vocabulary used by verify.ts. */
export function certErrorMessage(e: unknown): string | undefined {
  if (e instanceof CertificateError) return e.message;
  if (e instanceof EngineError) return e.message;
  return undefined;
}
