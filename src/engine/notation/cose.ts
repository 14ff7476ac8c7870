// Notary Project COSE envelope (application/cose, COSE_Sign1 = CBOR tag 18).
import { EngineError } from "../errors.js";
import {
  type CborKey,
  type CborMap,
  type CborValue,
  decodeCbor,
  encodeArrayHead,
  encodeBytes,
  encodeText,
  isTag,
} from "./cbor.js";
import type { ParsedEnvelope, SignatureAlgorithm, SigningScheme } from "./types.js";

const MAX_ENVELOPE = 4 * 1024 * 1024;
const MAX_CERTS = 10;

const H_ALG = 1;
const H_CRIT = 2;
const H_CTY = 3;
const H_X5CHAIN = 33;
const KEY_EXPIRY = "io.cncf.notary.expiry";
const KEY_SIGNING_TIME = "io.cncf.notary.signingTime";
const KEY_SCHEME = "io.cncf.notary.signingScheme";
const KEY_AUTH_TIME = "io.cncf.notary.authenticSigningTime";
const KNOWN_CRIT = new Set<CborKey>([KEY_EXPIRY, KEY_SIGNING_TIME, KEY_SCHEME, KEY_AUTH_TIME]);

const ALG_BY_ID = new Map<number, SignatureAlgorithm>([
  [-37, "PS256"],
  [-38, "PS384"],
  [-39, "PS512"],
  [-7, "ES256"],
  [-35, "ES384"],
  [-36, "ES512"],
]);

function bad(msg: string): EngineError {
  return new EngineError("MALFORMED", `invalid COSE envelope: ${msg}`);
}

function isMap(v: CborValue): v is CborMap {
  return v instanceof Map;
}

/** A tag-1 (epoch seconds) date, the only time form the spec allows. */
function epochTime(v: CborValue | undefined, what: string): Date {
  if (v === undefined || !isTag(v) || v.tag !== 1) throw bad(`${what} must be a tag 1 date-time`);
  const s = v.value;
  if (typeof s !== "number" || !Number.isFinite(s)) throw bad(`${what} must be numeric epoch seconds`);
  const d = new Date(s * 1000);
  if (Number.isNaN(d.getTime())) throw bad(`${what} is out of range`);
  return d;
}

export function parseCose(envelope: Uint8Array): ParsedEnvelope {
  if (envelope.length > MAX_ENVELOPE) throw new EngineError("TOO_LARGE", "COSE envelope larger than 4 MiB");
  const top = decodeCbor(envelope);
  if (!isTag(top) || top.tag !== 18) throw bad("not a COSE_Sign1_Tagged message (tag 18)");
  const msg = top.value;
  if (!Array.isArray(msg) || msg.length !== 4) throw bad("COSE_Sign1 must be an array of 4");
  const [protBytes, unprot, payload, signature] = msg;
  if (!(protBytes instanceof Uint8Array) || protBytes.length === 0)
    throw bad("protected header must be a non-empty bstr");
  if (!isMap(unprot)) throw bad("unprotected header must be a map");
  if (!(payload instanceof Uint8Array)) throw bad("payload must be embedded (bstr)");
  if (!(signature instanceof Uint8Array) || signature.length === 0)
    throw bad("signature must be a non-empty bstr");
  const prot = decodeCbor(protBytes);
  if (!isMap(prot)) throw bad("protected header must encode a map");

  // A label must not appear in both buckets (RFC 9052 §3).
  for (const k of unprot.keys()) if (prot.has(k)) throw bad(`header ${JSON.stringify(k)} in both buckets`);

  const algId = prot.get(H_ALG);
  const algorithm = typeof algId === "number" ? ALG_BY_ID.get(algId) : undefined;
  if (!algorithm) throw bad(`unsupported signature algorithm ${String(algId)}`);
  const cty = prot.get(H_CTY);
  if (typeof cty !== "string") throw bad("missing content type (label 3) or not a text string");
  const scheme = prot.get(KEY_SCHEME);
  if (scheme !== "notary.x509" && scheme !== "notary.x509.signingAuthority")
    throw bad(`unsupported signing scheme ${JSON.stringify(scheme)}`);

  let signingTime: Date;
  if (scheme === "notary.x509") {
    if (prot.has(KEY_AUTH_TIME)) throw bad(`"${KEY_AUTH_TIME}" must not be present for notary.x509`);
    signingTime = epochTime(prot.get(KEY_SIGNING_TIME), "signing time");
  } else {
    if (prot.has(KEY_SIGNING_TIME))
      throw bad(`"${KEY_SIGNING_TIME}" must not be present for signingAuthority`);
    signingTime = epochTime(prot.get(KEY_AUTH_TIME), "authentic signing time");
  }
  const expiry = prot.has(KEY_EXPIRY) ? epochTime(prot.get(KEY_EXPIRY), "expiry") : undefined;
  if (expiry && expiry.getTime() <= signingTime.getTime()) throw bad("expiry is not after the signing time");

  const crit = prot.get(H_CRIT);
  if (!Array.isArray(crit) || crit.length === 0) throw bad("missing crit (label 2)");
  const critSet = new Set<CborKey>();
  for (const c of crit) {
    if (typeof c !== "string" && typeof c !== "number") throw bad("crit entries must be labels");
    if (critSet.has(c)) throw bad(`crit lists ${JSON.stringify(c)} twice`);
    critSet.add(c);
    if (!prot.has(c)) throw bad(`header ${JSON.stringify(c)} is marked critical but not present`);
    if (!KNOWN_CRIT.has(c))
      throw new EngineError(
        "UNSUPPORTED",
        `invalid COSE envelope: unknown critical header ${JSON.stringify(c)}`,
      );
  }
  const mustCrit: CborKey[] = [KEY_SCHEME];
  if (expiry) mustCrit.push(KEY_EXPIRY);
  if (scheme === "notary.x509.signingAuthority") mustCrit.push(KEY_AUTH_TIME);
  for (const k of mustCrit)
    if (!critSet.has(k)) throw bad(`required header ${JSON.stringify(k)} is not marked critical`);

  const chain = unprot.get(H_X5CHAIN);
  if (!Array.isArray(chain) || chain.length === 0)
    throw bad("certificate chain (x5chain, label 33) is missing");
  if (chain.length > MAX_CERTS)
    throw new EngineError("TOO_MANY", `certificate chain longer than ${MAX_CERTS}`);
  const certChain = chain.map((c) => {
    if (!(c instanceof Uint8Array)) throw bad("x5chain entries must be bstr");
    return c;
  });
  const ts = unprot.get("io.cncf.notary.timestampSignature");
  if (ts !== undefined && !(ts instanceof Uint8Array)) throw bad("timestamp signature must be a bstr");
  const agent = unprot.get("io.cncf.notary.signingAgent");

  // Sig_structure = ["Signature1", body_protected, external_aad = h'', payload]
  const signedBytes = new Uint8Array(
    Buffer.concat([
      encodeArrayHead(4),
      encodeText("Signature1"),
      encodeBytes(protBytes),
      encodeBytes(new Uint8Array(0)),
      encodeBytes(payload),
    ]),
  );
  return {
    format: "cose",
    algorithm,
    contentType: cty,
    signingScheme: scheme as SigningScheme,
    signingTime,
    ...(expiry ? { expiry } : {}),
    certChain,
    payload,
    signature,
    signedBytes,
    ...(ts && ts.length > 0 ? { timestampToken: ts } : {}),
    ...(typeof agent === "string" ? { signingAgent: agent } : {}),
  };
}
