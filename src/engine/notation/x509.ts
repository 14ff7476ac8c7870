// X.509 certificates: Node's X509Certificate for signatures and keys, our DER reader for
// what Node does not expose (key usage bits, EKU, basic constraints, CRL distribution
// points, the raw subject/issuer and signature algorithm).
//
// Decision: KEEP (issue 19, `npx tsx bench/codecs.ts`). @sigstore/core's X509Certificate
// parses faster (~45–80 µs vs ~220–460 µs for Node + this reader) but has no extended key
// usage or CRL distribution points, so this reader would stay beside it — two parsers for one
// certificate. @peculiar/x509 and pkijs take ~1–7 ms per certificate (×5–×10) and accept a
// non-minimal DER length. Certificates are parsed once per signature and cached per digest,
// so the cost is off the hot path.
import { errorMessage } from "../../base/errors.js";
import { createHash, type KeyObject, X509Certificate } from "node:crypto";
import { EngineError } from "../errors.js";
import {
  type Asn1,
  children,
  explicit,
  integerHex,
  isContext,
  malformed,
  parseDer,
  readAlgorithm,
  readBitString,
  readBoolean,
  readOctets,
  readOid,
  readString,
  readTime,
  seq,
  set,
  TAG,
} from "./asn1.js";

export const OID = {
  keyUsage: "2.5.29.15",
  basicConstraints: "2.5.29.19",
  extKeyUsage: "2.5.29.37",
  crlDistributionPoints: "2.5.29.31",
  subjectKeyId: "2.5.29.14",
  ekuAny: "2.5.29.37.0",
  ekuServerAuth: "1.3.6.1.5.5.7.3.1",
  ekuClientAuth: "1.3.6.1.5.5.7.3.2",
  ekuCodeSigning: "1.3.6.1.5.5.7.3.3",
  ekuEmailProtection: "1.3.6.1.5.5.7.3.4",
  ekuTimeStamping: "1.3.6.1.5.5.7.3.8",
  ekuOcspSigning: "1.3.6.1.5.5.7.3.9",
  sha1WithRSA: "1.2.840.113549.1.1.5",
  ecdsaWithSHA1: "1.2.840.10045.4.1",
} as const;

/** keyUsage bit numbers (RFC 5280 §4.2.1.3). */
export const KU = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
  encipherOnly: 7,
  decipherOnly: 8,
} as const;

const NAME_TYPES: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.4": "SN",
  "2.5.4.5": "SERIALNUMBER",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.9": "STREET",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.17": "POSTALCODE",
};

export interface NameAttr {
  type: string;
  value: string;
}

export interface Cert {
  der: Uint8Array;
  x509: X509Certificate;
  publicKey: KeyObject;
  /** RDNs in DER order; each RDN is a set of attributes. */
  subject: NameAttr[][];
  /** RFC 4514-style (most significant last, like Go's pkix.Name.String()). */
  subjectString: string;
  issuerString: string;
  rawSubject: Uint8Array;
  rawIssuer: Uint8Array;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  sigAlgOid: string;
  keyType: "rsa" | "ec" | "other";
  /** RSA modulus bits or EC field bits (256/384/521). */
  keyBits: number;
  basicConstraints?: { critical: boolean; ca: boolean; pathLen?: number };
  keyUsage?: { critical: boolean; bits: number };
  extKeyUsage?: { critical: boolean; oids: string[] };
  subjectKeyId?: Uint8Array;
  crlDistributionPoints: string[];
  sha256: string;
}

export function hasKeyUsage(c: Cert, bit: number): boolean {
  return c.keyUsage !== undefined && (c.keyUsage.bits & (1 << bit)) !== 0;
}

function parseName(node: Asn1 | undefined, what: string): NameAttr[][] {
  const rdns = seq(node, what);
  return rdns.map((rdn) =>
    set(rdn, `${what} RDN`).map((atv) => {
      const kids = seq(atv, `${what} attribute`);
      if (kids.length !== 2) throw malformed(`${what}: attribute must have type and value`);
      const oid = readOid(kids[0], `${what} attribute type`);
      let value: string;
      try {
        value = readString(kids[1], `${what} attribute value`);
      } catch {
        value = `#${Buffer.from(kids[1]!.der).toString("hex")}`;
      }
      return { type: NAME_TYPES[oid] ?? oid, value };
    }),
  );
}

function escapeDnValue(v: string): string {
  let s = v.replace(/([,+"\\<>;])/g, "\\$1");
  if (s.startsWith(" ") || s.startsWith("#")) s = `\\${s}`;
  if (s.endsWith(" ") && s.length > 1) s = `${s.slice(0, -1)}\\ `;
  return s;
}

export function nameToString(name: NameAttr[][]): string {
  return [...name]
    .reverse()
    .map((rdn) => rdn.map((a) => `${a.type}=${escapeDnValue(a.value)}`).join("+"))
    .join(",");
}

function parseExtensions(node: Asn1, cert: Partial<Cert>): void {
  const seen = new Set<string>();
  for (const ext of seq(explicit(node, "extensions"), "extensions")) {
    const kids = seq(ext, "extension");
    if (kids.length < 2 || kids.length > 3) throw malformed("extension: bad length");
    const oid = readOid(kids[0], "extension id");
    if (seen.has(oid)) throw malformed(`duplicate extension ${oid}`);
    seen.add(oid);
    let critical = false;
    let valueNode = kids[1];
    if (kids.length === 3) {
      // An explicit FALSE is not DER, but common enough (and harmless) to accept.
      critical = readBoolean(kids[1], "extension critical");
      valueNode = kids[2];
    }
    const value = readOctets(valueNode, "extension value");
    switch (oid) {
      case OID.keyUsage: {
        const { unused, bytes } = readBitString(parseDer(value), "keyUsage");
        let bits = 0;
        for (let i = 0; i < bytes.length * 8 - unused && i < 16; i++) {
          if ((bytes[i >> 3]! & (0x80 >> (i & 7))) !== 0) bits |= 1 << i;
        }
        cert.keyUsage = { critical, bits };
        break;
      }
      case OID.basicConstraints: {
        const bc = children(parseDer(value));
        let ca = false;
        let pathLen: number | undefined;
        let i = 0;
        if (bc[i] && bc[i]!.tag === TAG.BOOLEAN && bc[i]!.cls === 0) ca = readBoolean(bc[i++], "cA");
        if (bc[i]) {
          const c = bc[i++]!;
          if (c.tag !== TAG.INTEGER || c.content.length > 4) throw malformed("pathLenConstraint");
          pathLen = parseInt(integerHex(c, "pathLenConstraint"), 16);
          if ((c.content[0]! & 0x80) !== 0) throw malformed("negative pathLenConstraint");
        }
        if (i !== bc.length) throw malformed("basicConstraints: trailing data");
        cert.basicConstraints = pathLen === undefined ? { critical, ca } : { critical, ca, pathLen };
        break;
      }
      case OID.extKeyUsage: {
        const oids = seq(parseDer(value), "extKeyUsage").map((n) => readOid(n, "extKeyUsage purpose"));
        if (oids.length === 0) throw malformed("empty extKeyUsage");
        cert.extKeyUsage = { critical, oids };
        break;
      }
      case OID.subjectKeyId:
        cert.subjectKeyId = readOctets(parseDer(value), "subjectKeyIdentifier");
        break;
      case OID.crlDistributionPoints: {
        const urls: string[] = [];
        for (const dp of seq(parseDer(value), "cRLDistributionPoints")) {
          const fields = seq(dp, "DistributionPoint");
          const dpName = fields.find((f) => isContext(f, 0));
          if (!dpName) continue;
          const fullName = explicit(dpName, "distributionPoint");
          if (!isContext(fullName, 0)) continue; // nameRelativeToCRLIssuer: not supported
          for (const gn of children(fullName)) {
            // uniformResourceIdentifier [6] IA5String (implicit)
            if (isContext(gn, 6) && !gn.constructed) urls.push(Buffer.from(gn.content).toString("latin1"));
          }
        }
        cert.crlDistributionPoints = urls;
        break;
      }
      default:
        break;
    }
  }
}

/** Parses a DER certificate strictly; a typed MALFORMED error on anything odd. */
export function parseCert(der: Uint8Array): Cert {
  if (der.length > 64 * 1024) throw new EngineError("TOO_LARGE", "certificate larger than 64 KiB");
  const top = seq(parseDer(der), "Certificate");
  if (top.length !== 3) throw malformed("Certificate must have 3 elements");
  const tbs = seq(top[0], "TBSCertificate");
  const outerAlg = readAlgorithm(top[1], "signatureAlgorithm");
  readBitString(top[2], "signatureValue");
  let i = 0;
  if (isContext(tbs[0], 0)) i++; // version
  const serialHex = integerHex(tbs[i++], "serialNumber");
  const innerAlg = readAlgorithm(tbs[i++], "signature");
  if (innerAlg.oid !== outerAlg.oid) throw malformed("signature algorithm mismatch between TBS and outer");
  const issuerNode = tbs[i++];
  const issuer = parseName(issuerNode, "issuer");
  const validity = seq(tbs[i++], "validity");
  if (validity.length !== 2) throw malformed("validity must have 2 times");
  const notBefore = readTime(validity[0], "notBefore");
  const notAfter = readTime(validity[1], "notAfter");
  const subjectNode = tbs[i++];
  const subject = parseName(subjectNode, "subject");
  seq(tbs[i++], "subjectPublicKeyInfo");
  const cert: Partial<Cert> = { crlDistributionPoints: [] };
  for (; i < tbs.length; i++) {
    const n = tbs[i]!;
    if (isContext(n, 3)) parseExtensions(n, cert);
    else if (!isContext(n, 1) && !isContext(n, 2)) throw malformed("unexpected field in TBSCertificate");
  }
  let x509: X509Certificate;
  let publicKey: KeyObject;
  try {
    x509 = new X509Certificate(der);
    // The key is decoded lazily; a corrupt SPKI throws here, not in the constructor.
    publicKey = x509.publicKey;
  } catch (e) {
    throw new EngineError("MALFORMED", `certificate rejected by the X.509 parser: ${errorMessage(e)}`, {
      cause: e,
    });
  }
  let keyType: Cert["keyType"] = "other";
  let keyBits = 0;
  const det = publicKey.asymmetricKeyDetails ?? {};
  if (publicKey.asymmetricKeyType === "rsa") {
    keyType = "rsa";
    keyBits = det.modulusLength ?? 0;
  } else if (publicKey.asymmetricKeyType === "ec") {
    keyType = "ec";
    keyBits =
      { prime256v1: 256, "P-256": 256, secp384r1: 384, "P-384": 384, secp521r1: 521, "P-521": 521 }[
        det.namedCurve ?? ""
      ] ?? 0;
  }
  return {
    ...cert,
    der,
    x509,
    publicKey,
    subject,
    subjectString: nameToString(subject),
    issuerString: nameToString(issuer),
    rawSubject: subjectNode!.der,
    rawIssuer: issuerNode!.der,
    serialHex,
    notBefore,
    notAfter,
    sigAlgOid: outerAlg.oid,
    keyType,
    keyBits,
    crlDistributionPoints: cert.crlDistributionPoints ?? [],
    sha256: createHash("sha256").update(der).digest("hex"),
  } as Cert;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a).equals(Buffer.from(b));
}

/** True when `child`'s issuer name equals `parent`'s subject and `parent`'s key verifies `child`. */
export function isIssuedBy(child: Cert, parent: Cert): boolean {
  if (!bytesEqual(child.rawIssuer, parent.rawSubject)) return false;
  try {
    return child.x509.verify(parent.publicKey);
  } catch {
    return false;
  }
}

export function isSelfSigned(c: Cert): boolean {
  return isIssuedBy(c, c);
}

/** Parses PEM text holding one or more certificates. */
export function parsePemCerts(pem: string): Cert[] {
  const out: Cert[] = [];
  const re = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;
  for (let m = re.exec(pem); m !== null; m = re.exec(pem)) {
    const b64 = m[1]!.replace(/\s+/g, "");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw malformed("PEM body is not base64");
    out.push(parseCert(new Uint8Array(Buffer.from(b64, "base64"))));
    if (out.length > 1000) throw new EngineError("TOO_MANY", "more than 1000 certificates in one PEM file");
  }
  return out;
}
