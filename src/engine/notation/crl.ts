// CRL revocation checking (trust-store-trust-policy.md "Certificate Revocation Evaluation"):
// each certificate's CRL distribution points over HTTP, with a timeout, a size cap and a
// cache bounded by the CRL's nextUpdate. OCSP is not implemented (CRL only).
//
// Decision: KEEP the CRL parser (issue 19, `npx tsx bench/codecs.ts`). @sigstore/core has no
// CRL support; on an openssl CRL with 2,000 entries (70 KB) @peculiar/x509 throws "Maximum
// ASN.1 node count exceeded" and pkijs fails to parse it; both read an empty CRL in ~0.5 ms
// (this parser: ~12 µs) and both accept a non-minimal DER length. Cost here is ~7–13 µs per
// entry (14–27 ms for 2,000), paid once per download (the parsed CRL is cached until
// nextUpdate); a CRL of 100k+ entries would hold the event loop for a second or more.
import { errorMessage } from "../../base/errors.js";
import { verify as cryptoVerify } from "node:crypto";
import { EngineError } from "../errors.js";
import {
  children,
  explicit,
  integerHex,
  isContext,
  isUniversal,
  parseDer,
  readAlgorithm,
  readBitString,
  readOctets,
  readOid,
  readTime,
  seq,
  TAG,
} from "./asn1.js";
import { bytesEqual, type Cert } from "./x509.js";

export type RevocationStatus = "ok" | "revoked" | "unknown";

export interface RevocationResult {
  status: RevocationStatus;
  /** Subject of the certificate that decided a non-ok status. */
  subject?: string;
  reason?: string;
}

export interface RevocationOptions {
  timeoutMs?: number;
  maxCrlBytes?: number;
  now?: Date;
  signal?: AbortSignal;
  fetch?: typeof fetch;
  /** Time the signature was made, when authentic (timestamp / signing authority). */
  authenticTime?: Date;
}

const SIG_HASH: Record<string, { hash: string; ec: boolean }> = {
  "1.2.840.113549.1.1.11": { hash: "sha256", ec: false },
  "1.2.840.113549.1.1.12": { hash: "sha384", ec: false },
  "1.2.840.113549.1.1.13": { hash: "sha512", ec: false },
  "1.2.840.10045.4.3.2": { hash: "sha256", ec: true },
  "1.2.840.10045.4.3.3": { hash: "sha384", ec: true },
  "1.2.840.10045.4.3.4": { hash: "sha512", ec: true },
};
const OID_REASON = "2.5.29.21";
const OID_INVALIDITY = "2.5.29.24";
const REASON_REMOVE_FROM_CRL = 8;

interface ParsedCrl {
  issuerDer: Uint8Array;
  thisUpdate: Date;
  nextUpdate?: Date;
  revoked: Map<string, { reason?: number; invalidity?: Date }>;
  tbsDer: Uint8Array;
  sigAlgOid: string;
  signature: Uint8Array;
}

export function parseCrl(der: Uint8Array): ParsedCrl {
  const top = seq(parseDer(der), "CertificateList");
  if (top.length !== 3) throw new EngineError("MALFORMED", "CRL must have 3 elements");
  const tbs = seq(top[0], "TBSCertList");
  const sigAlgOid = readAlgorithm(top[1]).oid;
  const { bytes: signature } = readBitString(top[2], "CRL signature");
  let i = 0;
  if (isUniversal(tbs[0]!, TAG.INTEGER)) i++;
  readAlgorithm(tbs[i++]);
  const issuerDer = tbs[i++]!.der;
  const thisUpdate = readTime(tbs[i++], "thisUpdate");
  let nextUpdate: Date | undefined;
  if (tbs[i] && (isUniversal(tbs[i]!, TAG.UTCTime) || isUniversal(tbs[i]!, TAG.GeneralizedTime)))
    nextUpdate = readTime(tbs[i++], "nextUpdate");
  const revoked = new Map<string, { reason?: number; invalidity?: Date }>();
  if (tbs[i] && isUniversal(tbs[i]!, TAG.SEQUENCE)) {
    for (const entry of seq(tbs[i++], "revokedCertificates")) {
      const f = seq(entry, "revoked entry");
      const serial = integerHex(f[0], "userCertificate");
      readTime(f[1], "revocationDate");
      const info: { reason?: number; invalidity?: Date } = {};
      if (f[2]) {
        for (const ext of seq(f[2], "crlEntryExtensions")) {
          const e = seq(ext, "extension");
          const oid = readOid(e[0]);
          const val = readOctets(e[e.length - 1]);
          if (oid === OID_REASON) {
            const r = parseDer(val);
            if (r.tag === 10 && r.content.length === 1) info.reason = r.content[0]!;
          } else if (oid === OID_INVALIDITY) info.invalidity = readTime(parseDer(val), "invalidityDate");
        }
      }
      revoked.set(serial, info);
    }
  }
  if (tbs[i] && isContext(tbs[i], 0)) {
    explicit(tbs[i]!, "crlExtensions");
    i++;
  }
  if (i !== tbs.length) throw new EngineError("MALFORMED", "CRL: unexpected fields");
  void children;
  return {
    issuerDer,
    thisUpdate,
    ...(nextUpdate ? { nextUpdate } : {}),
    revoked,
    tbsDer: top[0]!.der,
    sigAlgOid,
    signature,
  };
}

/** Caches CRLs by URL until their nextUpdate; shared across verifications. */
export class CrlCache {
  private readonly entries = new Map<string, { crl: ParsedCrl; der: Uint8Array; until: number }>();
  constructor(private readonly maxEntries = 256) {}

  get(url: string, now: number): ParsedCrl | undefined {
    const e = this.entries.get(url);
    if (!e) return undefined;
    if (e.until <= now) {
      this.entries.delete(url);
      return undefined;
    }
    return e.crl;
  }

  put(url: string, crl: ParsedCrl, der: Uint8Array): void {
    if (!crl.nextUpdate) return; // no freshness bound: do not cache
    if (this.entries.size >= this.maxEntries) {
      const first = this.entries.keys().next().value;
      if (first !== undefined) this.entries.delete(first);
    }
    this.entries.set(url, { crl, der, until: crl.nextUpdate.getTime() });
  }
}

export const defaultCrlCache = new CrlCache();

async function download(url: string, opts: RevocationOptions): Promise<Uint8Array> {
  if (!/^https?:\/\//i.test(url)) throw new EngineError("UNSUPPORTED", `CRL URL ${url} is not HTTP`);
  const max = opts.maxCrlBytes ?? 10 * 1024 * 1024;
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 5000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const f = opts.fetch ?? fetch;
  const res = await f(url, { signal, redirect: "follow" });
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => {});
    throw new EngineError("REVOCATION_UNAVAILABLE", `CRL ${url} answered HTTP ${res.status}`);
  }
  const len = Number(res.headers.get("content-length") ?? "0");
  if (len > max) {
    await res.body?.cancel().catch(() => {});
    throw new EngineError("TOO_LARGE", `CRL ${url} is larger than ${max} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (res.body) {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) {
        await reader.cancel().catch(() => {});
        throw new EngineError("TOO_LARGE", `CRL ${url} is larger than ${max} bytes`);
      }
      chunks.push(value);
    }
  }
  return new Uint8Array(Buffer.concat(chunks));
}

function checkCrlSignature(crl: ParsedCrl, issuer: Cert): boolean {
  if (!bytesEqual(crl.issuerDer, issuer.rawSubject)) return false;
  const alg = SIG_HASH[crl.sigAlgOid];
  if (!alg) return false;
  try {
    return cryptoVerify(
      alg.hash,
      crl.tbsDer,
      alg.ec ? { key: issuer.publicKey, dsaEncoding: "der" } : issuer.publicKey,
      crl.signature,
    );
  } catch {
    return false;
  }
}

async function checkOne(
  cert: Cert,
  issuer: Cert,
  opts: RevocationOptions,
  cache: CrlCache,
): Promise<RevocationResult> {
  const now = (opts.now ?? new Date()).getTime();
  const errors: string[] = [];
  for (const url of cert.crlDistributionPoints) {
    try {
      let crl = cache.get(url, now);
      if (!crl) {
        const der = await download(url, opts);
        crl = parseCrl(der);
        if (!checkCrlSignature(crl, issuer))
          throw new Error(`CRL ${url} is not signed by "${issuer.subjectString}"`);
        cache.put(url, crl, der);
      }
      if (crl.nextUpdate && crl.nextUpdate.getTime() < now) throw new Error(`CRL ${url} has expired`);
      const entry = crl.revoked.get(cert.serialHex);
      if (!entry || entry.reason === REASON_REMOVE_FROM_CRL) return { status: "ok" };
      if (entry.invalidity && opts.authenticTime && entry.invalidity > opts.authenticTime)
        return { status: "ok" };
      return {
        status: "revoked",
        subject: cert.subjectString,
        reason: `certificate "${cert.subjectString}" is revoked`,
      };
    } catch (e) {
      if (opts.signal?.aborted)
        throw new EngineError("CANCELLED", "revocation check was cancelled", { cause: e });
      errors.push(errorMessage(e));
    }
  }
  return {
    status: "unknown",
    subject: cert.subjectString,
    reason: `revocation status of "${cert.subjectString}" is unknown: ${errors.join("; ")}`,
  };
}

/** Checks a leaf-first chain; certificates without CRL distribution points are not revocable. */
export async function checkChainRevocation(
  chain: Cert[],
  opts: RevocationOptions,
  cache: CrlCache = defaultCrlCache,
): Promise<RevocationResult> {
  let unknown: RevocationResult | undefined;
  for (let i = chain.length - 1; i >= 0; i--) {
    const cert = chain[i]!;
    if (cert.crlDistributionPoints.length === 0) continue;
    const issuer = chain[i + 1] ?? cert;
    const r = await checkOne(cert, issuer, opts, cache);
    if (r.status === "revoked") return r;
    if (r.status === "unknown") unknown ??= r;
  }
  return unknown ?? { status: "ok" };
}
