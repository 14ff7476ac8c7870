// A small, strict DER reader: exactly what X.509 extensions, CRLs and RFC 3161 tokens need.
// Definite lengths only, minimal length encodings, bounded tag numbers and child counts;
// every problem is an EngineError("MALFORMED").
//
// Decision: KEEP (issue 19, measured with `npx tsx bench/codecs.ts`). DER (X.690 §10.1)
// forbids non-minimal and indefinite lengths; this reader and @sigstore/core's ASN1Obj reject
// a non-minimal length, asn1js (under pkijs and @peculiar/x509) accepts it. Parsing a 1 KB
// certificate: ~8–30 µs here, ~45–120 µs @sigstore/core ASN1Obj (×4), ~500–1000 µs asn1js
// (×40). No dependency, ~270 lines; the fuzz suites exercise it through every codec below.
import { EngineError } from "../errors.js";

export const CLASS_UNIVERSAL = 0;
export const CLASS_CONTEXT = 2;

export const TAG = {
  BOOLEAN: 1,
  INTEGER: 2,
  BIT_STRING: 3,
  OCTET_STRING: 4,
  NULL: 5,
  OID: 6,
  UTF8String: 12,
  SEQUENCE: 16,
  SET: 17,
  PrintableString: 19,
  T61String: 20,
  IA5String: 22,
  UTCTime: 23,
  GeneralizedTime: 24,
  UniversalString: 28,
  BMPString: 30,
} as const;

/** Caps: a certificate or token never needs more. */
const MAX_CHILDREN = 4096;
const MAX_TAG_NUMBER = 0x1fffff;

export interface Asn1 {
  cls: number;
  constructed: boolean;
  tag: number;
  /** The whole TLV (header + content). */
  der: Uint8Array;
  /** Content octets. */
  content: Uint8Array;
}

export function malformed(what: string, details?: Record<string, unknown>): EngineError {
  return new EngineError("MALFORMED", `malformed DER: ${what}`, details ? { details } : {});
}

/** Reads one TLV at `offset`; returns the node and the offset after it. */
export function readTlv(buf: Uint8Array, offset: number): { node: Asn1; next: number } {
  let p = offset;
  if (p >= buf.length) throw malformed("unexpected end of data reading a tag");
  const b0 = buf[p++]!;
  const cls = b0 >> 6;
  const constructed = (b0 & 0x20) !== 0;
  let tag = b0 & 0x1f;
  if (tag === 0x1f) {
    tag = 0;
    for (let i = 0; ; i++) {
      if (p >= buf.length) throw malformed("truncated high tag number");
      const b = buf[p++]!;
      if (i === 0 && b === 0x80) throw malformed("non-minimal tag number");
      tag = tag * 128 + (b & 0x7f);
      if (tag > MAX_TAG_NUMBER) throw malformed("tag number too large");
      if ((b & 0x80) === 0) break;
    }
    if (tag < 0x1f) throw malformed("non-minimal tag number");
  }
  if (p >= buf.length) throw malformed("unexpected end of data reading a length");
  const l0 = buf[p++]!;
  let len: number;
  if (l0 < 0x80) {
    len = l0;
  } else if (l0 === 0x80) {
    throw malformed("indefinite length is not DER");
  } else {
    const n = l0 & 0x7f;
    if (n > 4) throw malformed("length field too long");
    if (p + n > buf.length) throw malformed("truncated length");
    if (buf[p] === 0) throw malformed("non-minimal length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++]!;
    if (len < 0x80) throw malformed("non-minimal length");
  }
  if (len > buf.length - p) throw malformed("length exceeds the data", { need: len, have: buf.length - p });
  const content = buf.subarray(p, p + len);
  return { node: { cls, constructed, tag, der: buf.subarray(offset, p + len), content }, next: p + len };
}

/** Parses a buffer that must hold exactly one DER value. */
export function parseDer(buf: Uint8Array): Asn1 {
  const { node, next } = readTlv(buf, 0);
  if (next !== buf.length) throw malformed("trailing data after the DER value");
  return node;
}

/** The children of a constructed value. */
export function children(node: Asn1): Asn1[] {
  if (!node.constructed) throw malformed("expected a constructed value");
  const out: Asn1[] = [];
  let p = 0;
  while (p < node.content.length) {
    if (out.length >= MAX_CHILDREN) throw malformed("too many elements");
    const { node: child, next } = readTlv(node.content, p);
    out.push(child);
    p = next;
  }
  return out;
}

export function isUniversal(node: Asn1, tag: number): boolean {
  return node.cls === CLASS_UNIVERSAL && node.tag === tag;
}

export function isContext(node: Asn1 | undefined, tag: number): boolean {
  return node !== undefined && node.cls === CLASS_CONTEXT && node.tag === tag;
}

export function expect(node: Asn1 | undefined, tag: number, what: string): Asn1 {
  if (node === undefined) throw malformed(`missing ${what}`);
  if (!isUniversal(node, tag)) throw malformed(`${what}: unexpected tag ${node.cls}/${node.tag}`);
  return node;
}

export function seq(node: Asn1 | undefined, what: string): Asn1[] {
  return children(expect(node, TAG.SEQUENCE, what));
}

export function set(node: Asn1 | undefined, what: string): Asn1[] {
  return children(expect(node, TAG.SET, what));
}

/** Explicitly tagged [n] wrapper → its single child. */
export function explicit(node: Asn1, what: string): Asn1 {
  const kids = children(node);
  if (kids.length !== 1) throw malformed(`${what}: explicit tag must wrap one value`);
  return kids[0]!;
}

export function readOid(node: Asn1 | undefined, what = "OID"): string {
  const n = expect(node, TAG.OID, what);
  const c = n.content;
  if (c.length === 0 || c.length > 64) throw malformed(`${what}: bad OID length`);
  const parts: number[] = [];
  let v = 0;
  let first = true;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    if (v === 0 && b === 0x80) throw malformed(`${what}: non-minimal OID arc`);
    v = v * 128 + (b & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 256) throw malformed(`${what}: OID arc too large`);
    if ((b & 0x80) === 0) {
      if (first) {
        const a = v < 40 ? 0 : v < 80 ? 1 : 2;
        parts.push(a, v - a * 40);
        first = false;
      } else parts.push(v);
      v = 0;
    } else if (i === c.length - 1) throw malformed(`${what}: truncated OID`);
  }
  return parts.join(".");
}

/** INTEGER as a bigint (two's complement). */
export function readInteger(node: Asn1 | undefined, what = "INTEGER"): bigint {
  const n = expect(node, TAG.INTEGER, what);
  const c = n.content;
  if (c.length === 0) throw malformed(`${what}: empty integer`);
  if (c.length > 1 && ((c[0] === 0 && (c[1]! & 0x80) === 0) || (c[0] === 0xff && (c[1]! & 0x80) !== 0)))
    throw malformed(`${what}: non-minimal integer`);
  if (c.length > 256) throw malformed(`${what}: integer too large`);
  let v = 0n;
  for (const b of c) v = (v << 8n) | BigInt(b);
  if ((c[0]! & 0x80) !== 0) v -= 1n << BigInt(8 * c.length);
  return v;
}

/** INTEGER content as unsigned hex without leading zeros (serial numbers). */
export function integerHex(node: Asn1 | undefined, what = "INTEGER"): string {
  const n = expect(node, TAG.INTEGER, what);
  if (n.content.length === 0 || n.content.length > 64) throw malformed(`${what}: bad integer length`);
  const hex = Buffer.from(n.content)
    .toString("hex")
    .replace(/^(00)+/, "");
  return hex === "" ? "00" : hex;
}

export function readBoolean(node: Asn1 | undefined, what = "BOOLEAN"): boolean {
  const n = expect(node, TAG.BOOLEAN, what);
  if (n.content.length !== 1) throw malformed(`${what}: bad boolean`);
  if (n.content[0] === 0) return false;
  if (n.content[0] === 0xff) return true;
  throw malformed(`${what}: non-DER boolean`);
}

export function readBitString(
  node: Asn1 | undefined,
  what = "BIT STRING",
): { unused: number; bytes: Uint8Array } {
  const n = expect(node, TAG.BIT_STRING, what);
  if (n.content.length === 0) throw malformed(`${what}: empty bit string`);
  const unused = n.content[0]!;
  if (unused > 7 || (unused > 0 && n.content.length === 1)) throw malformed(`${what}: bad unused-bits count`);
  return { unused, bytes: n.content.subarray(1) };
}

export function readOctets(node: Asn1 | undefined, what = "OCTET STRING"): Uint8Array {
  return expect(node, TAG.OCTET_STRING, what).content;
}

const STRING_TAGS = new Set<number>([
  TAG.UTF8String,
  TAG.PrintableString,
  TAG.T61String,
  TAG.IA5String,
  TAG.BMPString,
  TAG.UniversalString,
]);

export function readString(node: Asn1 | undefined, what = "string"): string {
  if (node === undefined) throw malformed(`missing ${what}`);
  if (node.cls !== CLASS_UNIVERSAL || !STRING_TAGS.has(node.tag))
    throw malformed(`${what}: not a string type`);
  const c = node.content;
  if (node.tag === TAG.BMPString) {
    if (c.length % 2 !== 0) throw malformed(`${what}: odd BMPString`);
    let s = "";
    for (let i = 0; i < c.length; i += 2) s += String.fromCharCode((c[i]! << 8) | c[i + 1]!);
    return s;
  }
  if (node.tag === TAG.UniversalString) {
    if (c.length % 4 !== 0) throw malformed(`${what}: bad UniversalString`);
    let s = "";
    for (let i = 0; i < c.length; i += 4) {
      const cp = ((c[i]! << 24) | (c[i + 1]! << 16) | (c[i + 2]! << 8) | c[i + 3]!) >>> 0;
      if (cp > 0x10ffff) throw malformed(`${what}: bad code point`);
      s += String.fromCodePoint(cp);
    }
    return s;
  }
  if (node.tag === TAG.UTF8String) {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(c);
    } catch {
      throw malformed(`${what}: invalid UTF-8`);
    }
  }
  return Buffer.from(c).toString("latin1");
}

/** UTCTime / GeneralizedTime (DER forms: Z suffix, optional fraction for GeneralizedTime). */
export function readTime(node: Asn1 | undefined, what = "time"): Date {
  if (node === undefined) throw malformed(`missing ${what}`);
  const s = Buffer.from(node.content).toString("latin1");
  let m: RegExpExecArray | null;
  let year: number;
  let rest: string[];
  let frac = "";
  if (isUniversal(node, TAG.UTCTime)) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw malformed(`${what}: bad UTCTime`);
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    rest = m.slice(2, 7);
  } else if (isUniversal(node, TAG.GeneralizedTime)) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?Z$/.exec(s);
    if (!m) throw malformed(`${what}: bad GeneralizedTime`);
    year = Number(m[1]);
    rest = m.slice(2, 7);
    frac = m[7] ?? "";
  } else throw malformed(`${what}: not a time`);
  const [mo, d, h, mi, se] = rest.map(Number) as [number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59)
    throw malformed(`${what}: bad date`);
  const ms = frac === "" ? 0 : Math.floor(Number(`0.${frac}`) * 1000);
  const t = Date.UTC(year, mo - 1, d, h, mi, se, ms);
  const date = new Date(t);
  if (date.getUTCDate() !== d) throw malformed(`${what}: bad day of month`);
  return date;
}

/** AlgorithmIdentifier → { oid, params? }. */
export function readAlgorithm(
  node: Asn1 | undefined,
  what = "AlgorithmIdentifier",
): { oid: string; params?: Asn1 } {
  const kids = seq(node, what);
  if (kids.length < 1 || kids.length > 2) throw malformed(`${what}: bad length`);
  const oid = readOid(kids[0], `${what}.algorithm`);
  return kids[1] ? { oid, params: kids[1] } : { oid };
}

/** Re-encodes a node's content under a different universal tag (signedAttrs [0] → SET for hashing). */
export function retag(node: Asn1, newFirstByte: number): Uint8Array {
  const out = new Uint8Array(node.der.length);
  out.set(node.der);
  // The tag is one byte for the cases we use ([0] IMPLICIT → SET).
  out[0] = newFirstByte;
  return out;
}
