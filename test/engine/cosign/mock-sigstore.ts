// A local Sigstore, all from @sigstore/mock: Fulcio's CA with its CT log, Rekor and the TSA —
// real certificates, SCTs, signed entry timestamps, checkpoints and RFC 3161 timestamps, plus
// the trusted_root.json trusting exactly these. (With @sigstore/mock 0.11 and the pkijs of
// that time the CA's SCT list could not be parsed and we ran our own CA; 0.13's can.)
// Bundles are assembled the way cosign 3 stores keyless image signatures (bundle v0.3, DSSE,
// in-toto statement).
import crypto from "node:crypto";
import { initializeCA, initializeCTLog, initializeTLog, initializeTSA } from "@sigstore/mock";
import { vi } from "vitest";

type TLog = Awaited<ReturnType<typeof initializeTLog>>;
type TSA = Awaited<ReturnType<typeof initializeTSA>>;

const ec = () => crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
// @sigstore/mock 0.13 hands out ArrayBufferViews (Buffers at run time).
const bytes = (v: ArrayBufferView) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
const b64 = (b: ArrayBufferView) => bytes(b).toString("base64");
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

async function startCA(ctKeys: crypto.KeyPairKeyObjectResult, backdateMs: number): Promise<CA> {
  // @sigstore/mock's Fulcio: one CA with its CT log (certificates carry an SCT) and the same
  // CA key without a CT log (no SCT). Certificates are valid from one minute before start for
  // ten minutes, so a timestamp or log entry made right after issuance is inside the window.
  const clock = new Date(Date.now() - backdateMs);
  const caKeys = ec();
  const withCt = await initializeCA(caKeys, await initializeCTLog(ctKeys, clock), clock);
  const withoutCt = await initializeCA(caKeys, undefined, clock);
  return {
    rootCertificate: bytes(withCt.rootCertificate),
    async issueCertificate(o) {
      const req = {
        publicKey: o.publicKey.export({ type: "spki", format: "der" }),
        subjectAltName: o.subjectAltName,
        extensions: [
          { oid: OID_ISSUER_V1, value: o.issuer, legacy: true },
          { oid: OID_ISSUER_V2, value: o.issuer },
        ],
      };
      return bytes(await (o.sct === false ? withoutCt : withCt).issueCertificate(req));
    },
  };
}

export interface MockSigstore {
  ca: CA;
  tlog: TLog;
  tsa: TSA;
  trustedRoot: Record<string, unknown>;
}

/**
 * `caBackdateMs`: how long before now leaf certificates start (default one minute). The CA's
 * root starts now, so backdated leaves begin before their root; cosign checks the chain at the
 * leaf's notBefore (sigstore-js at the logged time) and needs a negative value (a leaf that
 * starts after the root; sign only once that time has come).
 */
export async function startMockSigstore(opts: { caBackdateMs?: number } = {}): Promise<MockSigstore> {
  const ctKeys = ec();
  const ctSpki = ctKeys.publicKey.export({ type: "spki", format: "der" });
  const ca = await startCA(ctKeys, opts.caBackdateMs ?? 60_000);
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

/** One trusted root trusting every given Sigstore (e.g. a rotation that adds a CA and its logs). */
export function mergedTrustedRoot(...sigstores: MockSigstore[]): Record<string, unknown> {
  const out: Record<string, unknown[]> = {
    certificateAuthorities: [],
    tlogs: [],
    ctlogs: [],
    timestampAuthorities: [],
  };
  for (const s of sigstores)
    for (const k of Object.keys(out)) out[k]!.push(...((s.trustedRoot[k] as unknown[]) ?? []));
  return { mediaType: sigstores[0]!.trustedRoot.mediaType, ...out };
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
  /** Another statement predicate (an attestation instead of a signature). */
  predicateType?: string;
  predicate?: unknown;
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
    predicateType: o.predicateType ?? "https://sigstore.dev/cosign/sign/v1",
    predicate: o.predicate ?? {},
  };
  const payload = Buffer.from(JSON.stringify(statement));
  const payloadType = "application/vnd.in-toto+json";
  const pae = dssePae(payloadType, payload);
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
    const resp = await stampSignature(s, sig);
    // The bundle carries the DER TimeStampResp as the TSA returned it.
    verificationMaterial.timestampVerificationData = { rfc3161Timestamps: [{ signedTimestamp: b64(resp) }] };
  }
  return {
    mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
    verificationMaterial,
    dsseEnvelope: { payload: b64(payload), payloadType, signatures: [{ sig: b64(sig) }] },
  };
}

export interface LegacySignOptions {
  /** The image digest the simple-signing payload names. */
  digest: string;
  /** docker-reference in the payload (the repository, no tag). */
  repository: string;
  subject: string;
  issuer: string;
  /** Attach the Rekor bundle annotation (default true). */
  rekorBundle?: boolean;
  /** Add an RFC 3161 timestamp annotation over the signature (default false). */
  tsa?: boolean;
  ca?: CA;
}

export interface LegacySignature {
  /** The simple-signing payload (the layer's bytes). */
  payload: Buffer;
  /** The layer annotations, exactly as cosign before v3 writes them for a keyless signature. */
  annotations: Record<string, string>;
}

/**
 * A legacy keyless `.sig` layer as cosign 2 writes it: simple-signing payload, ECDSA signature,
 * Fulcio certificate + chain, Rekor bundle (hashedrekord entry with its SET), optional
 * RFC 3161 timestamp over the signature.
 */
export async function legacyKeylessSignature(
  s: MockSigstore,
  o: LegacySignOptions,
): Promise<LegacySignature> {
  const payload = Buffer.from(
    JSON.stringify({
      critical: {
        identity: { "docker-reference": o.repository },
        image: { "docker-manifest-digest": o.digest },
        type: "cosign container image signature",
      },
      optional: null,
    }),
  );
  const { publicKey, privateKey } = ec();
  const ca = o.ca ?? s.ca;
  const cert = await ca.issueCertificate({ publicKey, subjectAltName: o.subject, issuer: o.issuer });
  const pem = (d: Buffer) =>
    `-----BEGIN CERTIFICATE-----\n${b64(d).replace(/.{64}/g, "$&\n")}\n-----END CERTIFICATE-----\n`;
  const sig = crypto.sign("sha256", payload, { key: privateKey, dsaEncoding: "der" });
  const annotations: Record<string, string> = {
    "dev.cosignproject.cosign/signature": b64(sig),
    "dev.sigstore.cosign/certificate": pem(cert),
    "dev.sigstore.cosign/chain": pem(ca.rootCertificate),
  };
  if (o.rekorBundle ?? true) {
    annotations["dev.sigstore.cosign/bundle"] = await rekorBundleAnnotation(s, {
      apiVersion: "0.0.1",
      kind: "hashedrekord",
      spec: {
        data: {
          hash: { algorithm: "sha256", value: crypto.createHash("sha256").update(payload).digest("hex") },
        },
        signature: { content: b64(sig), publicKey: { content: b64(Buffer.from(pem(cert))) } },
      },
    });
  }
  if (o.tsa) {
    const resp = await stampSignature(s, sig);
    annotations["dev.sigstore.cosign/rfc3161timestamp"] = JSON.stringify({
      SignedRFC3161Timestamp: b64(resp),
    });
  }
  return { payload, annotations };
}

/** An RFC 3161 TimeStampResp (DER) from the mock TSA over `sig`, as cosign requests it. */
async function stampSignature(s: MockSigstore, sig: Buffer): Promise<Buffer> {
  // @sigstore/mock's TSA (asn1js) writes genTime with trailing zeros of the milliseconds
  // trimmed (".12Z", as DER wants), which @sigstore/core's parser rejects (it wants exactly
  // 3 digits): 1 run in 10 failed with "invalid time". Still so with mock 0.13 / core 4.0.1.
  // Stamp at a millisecond value with 3 digits.
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(Math.floor(Date.now() / 1000) * 1000 + 123);
  try {
    return bytes(
      await s.tsa.timestamp({
        artifactHash: crypto.createHash("sha256").update(sig).digest(),
        hashAlgorithmOID: "2.16.840.1.101.3.4.2.1",
        nonce: 42,
        policyOID: "1.3.6.1.4.1.57264.2",
        certReq: true,
      }),
    );
  } finally {
    vi.useRealTimers();
  }
}

export interface LegacyAttestOptions {
  /** sha256:<hex> the statement names. */
  digest: string;
  subject: string;
  issuer: string;
  predicateType: string;
  predicate: unknown;
  /** Attach the Rekor bundle annotation (default true). */
  rekorBundle?: boolean;
  ca?: CA;
}

export interface LegacyAttestation {
  /** The layer: the DSSE envelope JSON. */
  envelope: Buffer;
  /** The layer annotations cosign 2 writes for a keyless attestation. */
  annotations: Record<string, string>;
}

/**
 * A legacy keyless `.att` layer as cosign 2 writes it: the DSSE envelope (in-toto statement
 * v0.1), the Fulcio certificate + chain, and the Rekor bundle of an intoto v0.0.2 entry (as
 * Rekor stores it: the envelope without payload, the signature base64-encoded twice, the
 * certificate PEM as public key, hashes of the envelope and of the payload).
 */
export async function legacyKeylessAttestation(
  s: MockSigstore,
  o: LegacyAttestOptions,
): Promise<LegacyAttestation> {
  const statement = {
    _type: "https://in-toto.io/Statement/v0.1",
    predicateType: o.predicateType,
    subject: [{ name: "image", digest: { sha256: o.digest.replace(/^sha256:/, "") } }],
    predicate: o.predicate,
  };
  const payload = Buffer.from(JSON.stringify(statement));
  const payloadType = "application/vnd.in-toto+json";
  const pae = dssePae(payloadType, payload);
  const { publicKey, privateKey } = ec();
  const ca = o.ca ?? s.ca;
  const cert = await ca.issueCertificate({ publicKey, subjectAltName: o.subject, issuer: o.issuer });
  const pem = (d: Buffer) =>
    `-----BEGIN CERTIFICATE-----\n${b64(d).replace(/.{64}/g, "$&\n")}\n-----END CERTIFICATE-----\n`;
  const sig = crypto.sign("sha256", pae, { key: privateKey, dsaEncoding: "der" });
  const envelope = Buffer.from(
    JSON.stringify({ payloadType, payload: b64(payload), signatures: [{ keyid: "", sig: b64(sig) }] }),
  );
  const annotations: Record<string, string> = {
    "dev.cosignproject.cosign/signature": "",
    predicateType: o.predicateType,
    "dev.sigstore.cosign/certificate": pem(cert),
    "dev.sigstore.cosign/chain": pem(ca.rootCertificate),
  };
  if (o.rekorBundle ?? true) {
    const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
    annotations["dev.sigstore.cosign/bundle"] = await rekorBundleAnnotation(s, {
      apiVersion: "0.0.2",
      kind: "intoto",
      spec: {
        content: {
          envelope: {
            payloadType,
            signatures: [{ publicKey: b64(Buffer.from(pem(cert))), sig: b64(Buffer.from(b64(sig))) }],
          },
          hash: { algorithm: "sha256", value: sha(envelope) },
          payloadHash: { algorithm: "sha256", value: sha(payload) },
        },
      },
    });
  }
  return { envelope, annotations };
}

/** Logs `entry` in the mock Rekor; the `dev.sigstore.cosign/bundle` annotation cosign 2 writes for it. */
async function rekorBundleAnnotation(s: MockSigstore, entry: unknown): Promise<string> {
  const logged = await s.tlog.log(entry as Parameters<MockSigstore["tlog"]["log"]>[0]);
  const e = Object.values(logged)[0] as unknown as {
    body: string;
    integratedTime: number;
    logID: string;
    logIndex: number;
    verification: { signedEntryTimestamp: string };
  };
  return JSON.stringify({
    SignedEntryTimestamp: e.verification.signedEntryTimestamp,
    Payload: { body: e.body, integratedTime: e.integratedTime, logIndex: e.logIndex, logID: e.logID },
  });
}

/** DSSE pre-authentication encoding: what a DSSE signature signs. */
function dssePae(payloadType: string, payload: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${payloadType.length} ${payloadType} ${payload.length} `),
    payload,
  ]);
}
