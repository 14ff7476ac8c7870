// A local Sigstore: Rekor and the TSA from @sigstore/mock, a small Fulcio-like CA with a CT
// log here (the mock CA's embedded SCT list is mis-encoded with the installed pkijs, so
// @sigstore/verify cannot parse it); real certificates, SCTs, signed entry timestamps,
// checkpoints and RFC 3161 timestamps, plus the trusted_root.json trusting exactly these. Bundles are assembled the
// way cosign 3 stores keyless image signatures (bundle v0.3, DSSE, in-toto statement).
import crypto from "node:crypto";
import * as x509 from "@peculiar/x509";
import { X509Certificate } from "@sigstore/core";
import { initializeTLog, initializeTSA } from "@sigstore/mock";
import { vi } from "vitest";

type TLog = Awaited<ReturnType<typeof initializeTLog>>;
type TSA = Awaited<ReturnType<typeof initializeTSA>>;

const ec = () => crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1";
const OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8";

export interface CA {
  rootCertificate: Buffer;
  /** A code-signing leaf for `publicKey` with SAN and Fulcio issuer extensions; SCT unless `sct` false. */
  issueCertificate(o: {
    publicKey: crypto.KeyObject;
    subjectAltName: string;
    issuer: string;
    sct?: boolean;
  }): Promise<Buffer>;
}

const ECDSA = { name: "ECDSA", namedCurve: "P-256" } as const;
const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" } as const;

/** DER length + value helpers (short and long form). */
function derLen(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const der = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag]), derLen(body.length), body]);
const u16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);

async function startCA(ctKey: crypto.KeyPairKeyObjectResult): Promise<CA> {
  const keys = (await globalThis.crypto.subtle.generateKey(ECDSA, true, ["sign", "verify"])) as Parameters<
    typeof x509.X509CertificateGenerator.createSelfSigned
  >[0]["keys"];
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=sigstore,O=sigstore.mock",
    notBefore: new Date(Date.now() - 86400_000),
    notAfter: new Date(Date.now() + 86400_000),
    keys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  const rootSpki = Buffer.from(await globalThis.crypto.subtle.exportKey("spki", keys.publicKey));
  const ctSpki = ctKey.publicKey.export({ type: "spki", format: "der" });
  const ctLogId = crypto.createHash("sha256").update(ctSpki).digest();
  return {
    rootCertificate: Buffer.from(root.rawData),
    async issueCertificate(o) {
      const pub = await globalThis.crypto.subtle.importKey(
        "spki",
        o.publicKey.export({ type: "spki", format: "der" }),
        ECDSA,
        true,
        ["verify"],
      );
      const now = new Date(Date.now() - 1000);
      const utf8 = Buffer.from(o.issuer, "utf8");
      const base = {
        serialNumber: crypto
          .randomBytes(8)
          .toString("hex")
          .replace(/^[89a-f]/, "1"),
        subject: "",
        issuer: root.subject,
        notBefore: now,
        notAfter: new Date(now.getTime() + 10 * 60_000),
        publicKey: pub,
        signingKey: keys.privateKey,
        signingAlgorithm: ECDSA_SHA256,
      };
      const extensions: x509.Extension[] = [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning]),
        new x509.SubjectAlternativeNameExtension([{ type: "url", value: o.subjectAltName }], true),
        new x509.Extension(OID_ISSUER_V1, false, utf8),
        new x509.Extension(OID_ISSUER_V2, false, der(0x0c, utf8)),
      ];
      if (o.sct === false)
        return Buffer.from((await x509.X509CertificateGenerator.create({ ...base, extensions })).rawData);
      // RFC 6962 §3.2: the SCT signs the precertificate TBS (no SCT extension) and the issuer key hash.
      const pre = await x509.X509CertificateGenerator.create({ ...base, extensions });
      const tbs = X509Certificate.parse(Buffer.from(pre.rawData)).tbsCertificate.toDER();
      const ts = Buffer.alloc(8);
      ts.writeBigUInt64BE(BigInt(Date.now()));
      const signed = Buffer.concat([
        Buffer.from([0, 0]),
        ts,
        u16(1),
        crypto.createHash("sha256").update(rootSpki).digest(),
        Buffer.from([(tbs.length >> 16) & 0xff, (tbs.length >> 8) & 0xff, tbs.length & 0xff]),
        tbs,
        u16(0),
      ]);
      const sig = crypto.sign("sha256", signed, { key: ctKey.privateKey, dsaEncoding: "der" });
      const sct = Buffer.concat([
        Buffer.from([0]),
        ctLogId,
        ts,
        u16(0),
        Buffer.from([4, 3]),
        u16(sig.length),
        sig,
      ]);
      const list = Buffer.concat([u16(sct.length + 2), u16(sct.length), sct]);
      extensions.push(new x509.Extension("1.3.6.1.4.1.11129.2.4.2", false, der(0x04, list)));
      return Buffer.from((await x509.X509CertificateGenerator.create({ ...base, extensions })).rawData);
    },
  };
}

export interface MockSigstore {
  ca: CA;
  tlog: TLog;
  tsa: TSA;
  trustedRoot: Record<string, unknown>;
}

export async function startMockSigstore(): Promise<MockSigstore> {
  const ctKeys = ec();
  const ctSpki = ctKeys.publicKey.export({ type: "spki", format: "der" });
  const ca = await startCA(ctKeys);
  const tlogKeys = ec();
  const tlog = await initializeTLog("https://rekor.local", tlogKeys);
  const tsa = await initializeTSA(ec());
  const start = new Date(Date.now() - 3600_000).toISOString();
  const spki = (k: crypto.KeyObject) => k.export({ type: "spki", format: "der" });
  const tlogSpki = spki(tlogKeys.publicKey);
  const trustedRoot = {
    mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    tlogs: [
      {
        baseUrl: "https://rekor.local",
        hashAlgorithm: "SHA2_256",
        publicKey: { rawBytes: b64(tlogSpki), keyDetails: "PKIX_ECDSA_P256_SHA_256", validFor: { start } },
        logId: { keyId: b64(crypto.createHash("sha256").update(tlogSpki).digest()) },
      },
    ],
    certificateAuthorities: [
      {
        subject: { organization: "sigstore.mock", commonName: "sigstore" },
        uri: "https://fulcio.local",
        certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
        validFor: { start },
      },
    ],
    ctlogs: [
      {
        baseUrl: "https://ctfe.local",
        hashAlgorithm: "SHA2_256",
        publicKey: { rawBytes: b64(ctSpki), keyDetails: "PKIX_ECDSA_P256_SHA_256", validFor: { start } },
        logId: { keyId: b64(crypto.createHash("sha256").update(ctSpki).digest()) },
      },
    ],
    timestampAuthorities: [
      {
        subject: { organization: "sigstore.mock", commonName: "tsa" },
        uri: "https://tsa.local",
        certChain: {
          certificates: [{ rawBytes: b64(tsa.intCertificate) }, { rawBytes: b64(tsa.rootCertificate) }],
        },
        validFor: { start },
      },
    ],
  };
  return { ca, tlog, tsa, trustedRoot };
}

export interface KeylessSignOptions {
  /** sha256:<hex> the in-toto statement names. */
  digest: string;
  subject: string;
  issuer: string;
  /** Log the signature in Rekor (default true). */
  tlog?: boolean;
  /** Add an RFC 3161 timestamp (default false). */
  tsa?: boolean;
  /** Issue the certificate without an SCT. */
  noSct?: boolean;
  /** Use another Sigstore's CA (untrusted). */
  ca?: CA;
  annotations?: Record<string, string>;
  /** Corrupt the logged signature (tlog body no longer matches the envelope). */
  tamperTlog?: boolean;
}

/** A bundle v0.3 JSON object exactly as cosign 3 would attach it for a keyless signature. */
export async function keylessBundle(
  s: MockSigstore,
  o: KeylessSignOptions,
): Promise<Record<string, unknown>> {
  const hex = o.digest.replace(/^sha256:/, "");
  const statement = {
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ digest: { sha256: hex }, annotations: o.annotations ?? {} }],
    predicateType: "https://sigstore.dev/cosign/sign/v1",
    predicate: {},
  };
  const payload = Buffer.from(JSON.stringify(statement));
  const payloadType = "application/vnd.in-toto+json";
  const pae = Buffer.concat([
    Buffer.from(`DSSEv1 ${payloadType.length} ${payloadType} ${payload.length} `),
    payload,
  ]);
  const { publicKey, privateKey } = ec();
  const cert = await (o.ca ?? s.ca).issueCertificate({
    publicKey,
    subjectAltName: o.subject,
    issuer: o.issuer,
    sct: !o.noSct,
  });
  const sig = crypto.sign("sha256", pae, { key: privateKey, dsaEncoding: "der" });
  const tlogEntries: unknown[] = [];
  if (o.tlog ?? true) {
    const loggedSig = o.tamperTlog ? crypto.sign("sha256", Buffer.from("other"), privateKey) : sig;
    const certPem = `-----BEGIN CERTIFICATE-----\n${b64(cert)}\n-----END CERTIFICATE-----\n`;
    const envelope = JSON.stringify({ payload: b64(payload), payloadType, signatures: [{ sig: b64(sig) }] });
    const entry = await s.tlog.log({
      apiVersion: "0.0.1",
      kind: "dsse",
      spec: {
        envelopeHash: {
          algorithm: "sha256",
          value: crypto.createHash("sha256").update(envelope).digest("hex"),
        },
        payloadHash: {
          algorithm: "sha256",
          value: crypto.createHash("sha256").update(payload).digest("hex"),
        },
        signatures: [{ signature: b64(loggedSig), verifier: b64(Buffer.from(certPem)) }],
      },
    });
    const e = Object.values(entry)[0] as unknown as {
      body: string;
      integratedTime: number;
      logID: string;
      logIndex: number;
      verification: {
        signedEntryTimestamp: string;
        inclusionProof: {
          logIndex: number;
          treeSize: number;
          checkpoint: string;
          hashes: string[];
          rootHash: string;
        };
      };
    };
    const p = e.verification.inclusionProof;
    tlogEntries.push({
      logIndex: String(e.logIndex),
      logId: { keyId: b64(Buffer.from(e.logID, "hex")) },
      kindVersion: { kind: "dsse", version: "0.0.1" },
      integratedTime: String(e.integratedTime),
      inclusionPromise: { signedEntryTimestamp: e.verification.signedEntryTimestamp },
      inclusionProof: {
        logIndex: String(p.logIndex),
        rootHash: b64(Buffer.from(p.rootHash, "hex")),
        treeSize: String(p.treeSize),
        hashes: p.hashes,
        checkpoint: { envelope: p.checkpoint },
      },
      canonicalizedBody: e.body,
    });
  }
  const verificationMaterial: Record<string, unknown> = { certificate: { rawBytes: b64(cert) }, tlogEntries };
  if (o.tsa) {
    // @sigstore/mock's TSA (pkijs) writes genTime with trailing zeros of the milliseconds
    // trimmed (".12Z"), which @sigstore/core's parser rejects (it wants exactly 3 digits):
    // 1 run in 10 failed with "invalid time". Stamp at a millisecond value with 3 digits.
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Math.floor(Date.now() / 1000) * 1000 + 123);
    let resp: Buffer;
    try {
      resp = await s.tsa.timestamp({
        artifactHash: crypto.createHash("sha256").update(sig).digest(),
        hashAlgorithmOID: "2.16.840.1.101.3.4.2.1",
        nonce: 42,
        policyOID: "1.3.6.1.4.1.57264.2",
        certReq: true,
      });
    } finally {
      vi.useRealTimers();
    }
    // The bundle carries the DER TimeStampResp as the TSA returned it.
    verificationMaterial.timestampVerificationData = { rfc3161Timestamps: [{ signedTimestamp: b64(resp) }] };
  }
  return {
    mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
    verificationMaterial,
    dsseEnvelope: { payload: b64(payload), payloadType, signatures: [{ sig: b64(sig) }] },
  };
}
