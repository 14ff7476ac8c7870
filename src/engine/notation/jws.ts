// Notary Project JWS envelope (application/jose+json, flattened JSON serialization).
// Parses and checks the header rules; the signature itself is verified in verify.ts.
import { isRecord } from "../../base/record.js";
import { EngineError } from "../errors.js";
import type { ParsedEnvelope, SignatureAlgorithm, SigningScheme } from "./types.js";

const MAX_ENVELOPE = 4 * 1024 * 1024;
const MAX_CERTS = 10;

const KEY_EXPIRY = "io.cncf.notary.expiry";
const KEY_SIGNING_TIME = "io.cncf.notary.signingTime";
const KEY_SCHEME = "io.cncf.notary.signingScheme";
const KEY_AUTH_TIME = "io.cncf.notary.authenticSigningTime";
const KNOWN_HEADERS = new Set([
  "alg",
  "cty",
  "crit",
  KEY_EXPIRY,
  KEY_SIGNING_TIME,
  KEY_SCHEME,
  KEY_AUTH_TIME,
]);
const ALGS = new Set<SignatureAlgorithm>(["PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]);

function bad(msg: string): EngineError {
  return new EngineError("MALFORMED", `invalid JWS envelope: ${msg}`);
}

function b64url(s: unknown, what: string): Uint8Array {
  if (typeof s !== "string") throw bad(`${what} must be a string`);
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1)
    throw bad(`${what} is not base64url without padding`);
  return new Uint8Array(Buffer.from(s, "base64url"));
}

function b64std(s: unknown, what: string): Uint8Array {
  if (typeof s !== "string") throw bad(`${what} must be a string`);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw bad(`${what} is not standard base64`);
  return new Uint8Array(Buffer.from(s, "base64"));
}


/** RFC 3339 date-time (what Go's time.Time JSON encoding accepts). */
export function parseRfc3339(v: unknown, what: string): Date {
  if (typeof v !== "string") throw bad(`${what} must be an RFC 3339 string`);
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/.exec(v);
  if (!m) throw bad(`${what} is not RFC 3339: ${JSON.stringify(v).slice(0, 60)}`);
  const d = new Date(v.toUpperCase());
  if (Number.isNaN(d.getTime())) throw bad(`${what} is not a valid time`);
  return d;
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw bad(`${what} is not UTF-8`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw bad(`${what} is not JSON`);
  }
}

export function parseJws(envelope: Uint8Array): ParsedEnvelope {
  if (envelope.length > MAX_ENVELOPE) throw new EngineError("TOO_LARGE", "JWS envelope larger than 4 MiB");
  const env = parseJson(envelope, "envelope");
  if (!isRecord(env)) throw bad("envelope must be a JSON object");
  if ("signatures" in env) throw bad("general JWS serialization is not supported (need flattened)");
  const protectedB64 = env.protected;
  const payloadB64 = env.payload;
  const payload = b64url(payloadB64, "payload");
  const signature = b64url(env.signature, "signature");
  if (signature.length === 0) throw bad("signature is empty");
  const hdrBytes = b64url(protectedB64, "protected");
  const hdr = parseJson(hdrBytes, "protected header");
  if (!isRecord(hdr)) throw bad("protected header must be a JSON object");

  const alg = hdr.alg;
  if (typeof alg !== "string" || !ALGS.has(alg as SignatureAlgorithm))
    throw bad(`unsupported signature algorithm ${JSON.stringify(alg)}`);
  if (typeof hdr.cty !== "string") throw bad(`missing "cty" (content type) header`);
  const scheme = hdr[KEY_SCHEME];
  if (scheme !== "notary.x509" && scheme !== "notary.x509.signingAuthority")
    throw bad(`unsupported signing scheme ${JSON.stringify(scheme)}`);

  let signingTime: Date;
  if (scheme === "notary.x509") {
    if (KEY_AUTH_TIME in hdr) throw bad(`"${KEY_AUTH_TIME}" must not be present for notary.x509`);
    if (!(KEY_SIGNING_TIME in hdr)) throw bad(`missing "${KEY_SIGNING_TIME}" header`);
    signingTime = parseRfc3339(hdr[KEY_SIGNING_TIME], "signing time");
  } else {
    if (KEY_SIGNING_TIME in hdr)
      throw bad(`"${KEY_SIGNING_TIME}" must not be present for notary.x509.signingAuthority`);
    if (!(KEY_AUTH_TIME in hdr)) throw bad(`missing "${KEY_AUTH_TIME}" header`);
    signingTime = parseRfc3339(hdr[KEY_AUTH_TIME], "authentic signing time");
  }
  const expiry = KEY_EXPIRY in hdr ? parseRfc3339(hdr[KEY_EXPIRY], "expiry") : undefined;
  if (expiry && expiry.getTime() <= signingTime.getTime()) throw bad("expiry is not after the signing time");

  // crit: present, strings, every entry present in the header, every entry understood,
  // and every header the spec requires to be critical listed.
  const crit = hdr.crit;
  if (!Array.isArray(crit) || crit.length === 0) throw bad(`missing "crit" header`);
  const critSet = new Set<string>();
  for (const c of crit) {
    if (typeof c !== "string") throw bad(`"crit" entries must be strings`);
    if (critSet.has(c)) throw bad(`"crit" lists ${JSON.stringify(c)} twice`);
    critSet.add(c);
    if (!(c in hdr)) throw bad(`header ${JSON.stringify(c)} is marked critical but not present`);
    if (!KNOWN_HEADERS.has(c) || c === "alg" || c === "cty" || c === "crit")
      throw new EngineError(
        "UNSUPPORTED",
        `invalid JWS envelope: unknown critical header ${JSON.stringify(c)}`,
      );
  }
  const mustCrit = [KEY_SCHEME];
  if (expiry) mustCrit.push(KEY_EXPIRY);
  if (scheme === "notary.x509.signingAuthority") mustCrit.push(KEY_AUTH_TIME);
  for (const k of mustCrit)
    if (!critSet.has(k)) throw bad(`required header ${JSON.stringify(k)} is not marked critical`);

  const unprotected = env.header;
  if (!isRecord(unprotected)) throw bad(`missing unprotected "header"`);
  const x5c = unprotected.x5c;
  if (!Array.isArray(x5c) || x5c.length === 0) throw bad("certificate chain (x5c) is missing");
  if (x5c.length > MAX_CERTS) throw new EngineError("TOO_MANY", `certificate chain longer than ${MAX_CERTS}`);
  const certChain = x5c.map((c, i) => b64std(c, `x5c[${i}]`));
  const tsRaw = unprotected["io.cncf.notary.timestampSignature"];
  const timestampToken = tsRaw === undefined ? undefined : b64std(tsRaw, "timestamp signature");
  const agent = unprotected["io.cncf.notary.signingAgent"];

  return {
    format: "jws",
    algorithm: alg as SignatureAlgorithm,
    contentType: hdr.cty,
    signingScheme: scheme as SigningScheme,
    signingTime,
    ...(expiry ? { expiry } : {}),
    certChain,
    payload,
    signature,
    signedBytes: new Uint8Array(Buffer.from(`${protectedB64}.${payloadB64}`, "ascii")),
    ...(timestampToken && timestampToken.length > 0 ? { timestampToken } : {}),
    ...(typeof agent === "string" ? { signingAgent: agent } : {}),
  };
}
