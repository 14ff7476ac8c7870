// Legacy keyless cosign signatures and attestations (`sha256-<hex>.sig` / `.att`, cosign
// before v3): the Fulcio certificate, its chain, the Rekor bundle (signed entry timestamp)
// and an optional RFC 3161 timestamp travel as annotations of the layer (simple-signing
// payload, or the DSSE envelope). They are restated as the Sigstore bundle they are
// equivalent to (v0.1: message signature over the payload, or the DSSE envelope; tlog entry
// with its inclusion promise) so one verifier — @sigstore/verify, offline, through
// keyless.ts — judges chain, SCT, SET, timestamps and the certificate at the logged time.
import { errorMessage } from "../../base/errors.js";
import { createHash, X509Certificate } from "node:crypto";
import { type Bundle, bundleFromJSON } from "@sigstore/bundle";
import { EngineError } from "../errors.js";
import { asObject, parseJsonBytes } from "./json.js";
import { ANN_CERTIFICATE } from "./types.js";

export const ANN_CHAIN = "dev.sigstore.cosign/chain";
export const ANN_REKOR_BUNDLE = "dev.sigstore.cosign/bundle";
export const ANN_RFC3161 = "dev.sigstore.cosign/rfc3161timestamp";

const MAX_ANNOTATION = 64 * 1024;

function malformed(msg: string): EngineError {
  return new EngineError("MALFORMED", `legacy keyless signature: ${msg}`);
}

function pemCertificates(text: string, what: string): Buffer[] {
  if (text.length > MAX_ANNOTATION) throw malformed(`${what} is larger than ${MAX_ANNOTATION} bytes`);
  const blocks = [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)];
  if (blocks.length === 0) throw malformed(`${what} holds no PEM certificate`);
  return blocks.map((m) => {
    const der = Buffer.from(m[1]!.replace(/\s+/g, ""), "base64");
    try {
      new X509Certificate(der);
    } catch (e) {
      throw malformed(`${what} holds a certificate that cannot be parsed (${errorMessage(e)})`);
    }
    return der;
  });
}

function annotationJson(text: string, what: string): Record<string, unknown> {
  if (text.length > MAX_ANNOTATION) throw malformed(`${what} is larger than ${MAX_ANNOTATION} bytes`);
  return asObject(parseJsonBytes(Buffer.from(text, "utf8"), what), what);
}

/** The Rekor entry of a cosign Rekor bundle annotation, as a bundle tlog entry. */
function tlogEntry(text: string): Record<string, unknown> {
  const rb = annotationJson(text, "Rekor bundle annotation");
  const set = rb.SignedEntryTimestamp;
  const p = rb.Payload as Record<string, unknown> | undefined;
  if (typeof set !== "string" || set === "") throw malformed("Rekor bundle has no SignedEntryTimestamp");
  if (typeof p !== "object" || p === null) throw malformed("Rekor bundle has no Payload");
  const { body, integratedTime, logIndex, logID } = p as Record<string, unknown>;
  if (typeof body !== "string" || typeof logID !== "string" || !/^[0-9a-fA-F]{64}$/.test(logID))
    throw malformed("Rekor bundle Payload needs body and a hex logID");
  if (!Number.isSafeInteger(integratedTime) || !Number.isSafeInteger(logIndex))
    throw malformed("Rekor bundle Payload needs integer integratedTime and logIndex");
  // kind/apiVersion of the logged entry (what @sigstore/verify compares the body against).
  let kind: unknown;
  let version: unknown;
  try {
    const entry = JSON.parse(Buffer.from(body, "base64").toString("utf8")) as Record<string, unknown>;
    kind = entry.kind;
    version = entry.apiVersion;
  } catch {
    throw malformed("Rekor bundle body is not base64 JSON");
  }
  if (typeof kind !== "string" || typeof version !== "string")
    throw malformed("Rekor bundle body has no kind/apiVersion");
  return {
    logIndex: String(logIndex),
    logId: { keyId: Buffer.from(logID, "hex").toString("base64") },
    kindVersion: { kind, version },
    integratedTime: String(integratedTime),
    inclusionPromise: { signedEntryTimestamp: set },
    canonicalizedBody: body,
  };
}

/** The verification material (certificate, chain, Rekor entry, timestamp) of legacy annotations. */
function verificationMaterial(annotations: Record<string, string>): Record<string, unknown> {
  const certText = annotations[ANN_CERTIFICATE];
  if (typeof certText !== "string") throw malformed(`no ${ANN_CERTIFICATE} annotation`);
  const leaf = pemCertificates(certText, "certificate annotation");
  if (leaf.length !== 1) throw malformed("certificate annotation must hold exactly one certificate");
  const chainText = annotations[ANN_CHAIN];
  const chain =
    typeof chainText === "string" && chainText.trim() !== ""
      ? pemCertificates(chainText, "chain annotation")
      : [];
  const vm: Record<string, unknown> = {
    x509CertificateChain: {
      certificates: [...leaf, ...chain].map((d) => ({ rawBytes: d.toString("base64") })),
    },
    tlogEntries:
      typeof annotations[ANN_REKOR_BUNDLE] === "string" ? [tlogEntry(annotations[ANN_REKOR_BUNDLE])] : [],
  };
  const tsText = annotations[ANN_RFC3161];
  if (typeof tsText === "string") {
    const ts = annotationJson(tsText, "RFC 3161 timestamp annotation").SignedRFC3161Timestamp;
    if (typeof ts !== "string" || ts === "")
      throw malformed("RFC 3161 annotation has no SignedRFC3161Timestamp");
    vm.timestampVerificationData = { rfc3161Timestamps: [{ signedTimestamp: ts }] };
  }
  return vm;
}

function toBundle(json: Record<string, unknown>): Bundle {
  try {
    return bundleFromJSON(json);
  } catch (e) {
    const fields = (e as { fields?: unknown }).fields;
    throw malformed(
      `its annotations do not form a valid Sigstore bundle${Array.isArray(fields) ? `: ${fields.slice(0, 5).join(", ")}` : e instanceof Error ? `: ${e.message.slice(0, 160)}` : ""}`,
    );
  }
}

/**
 * The Sigstore bundle a legacy keyless simple-signing layer stands for. `signature` is the
 * raw signature (decoded from dev.cosignproject.cosign/signature), `payload` the layer bytes.
 */
export function legacyKeylessBundle(
  annotations: Record<string, string>,
  payload: Uint8Array,
  signature: Buffer,
): Bundle {
  return toBundle({
    mediaType: "application/vnd.dev.sigstore.bundle+json;version=0.1",
    verificationMaterial: verificationMaterial(annotations),
    messageSignature: {
      messageDigest: { algorithm: "SHA2_256", digest: createHash("sha256").update(payload).digest("base64") },
      signature: signature.toString("base64"),
    },
  });
}

/**
 * The Sigstore bundle a legacy keyless attestation (`sha256-<hex>.att` layer: the DSSE
 * envelope itself, with the same certificate / chain / Rekor bundle annotations; cosign
 * before v3 logs it as an intoto v0.0.2 entry) stands for: the envelope as a DSSE bundle.
 */
export function legacyKeylessDsseBundle(
  annotations: Record<string, string>,
  envelope: { payloadType: string; payload: Buffer; signatures: { sig: Buffer }[] },
): Bundle {
  if (envelope.signatures.length !== 1)
    throw malformed(`a keyless DSSE envelope has one signature, this one ${envelope.signatures.length}`);
  return toBundle({
    mediaType: "application/vnd.dev.sigstore.bundle+json;version=0.1",
    verificationMaterial: verificationMaterial(annotations),
    dsseEnvelope: {
      payload: envelope.payload.toString("base64"),
      payloadType: envelope.payloadType,
      signatures: envelope.signatures.map((s) => ({ sig: s.sig.toString("base64"), keyid: "" })),
    },
  });
}
