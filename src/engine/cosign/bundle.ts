// Sigstore bundle v0.3 as cosign 3 stores it in an OCI layer: parsed and shape-checked with
// @sigstore/bundle, then reduced to what the verifiers need.
import {
  type Bundle,
  type BundleWithDsseEnvelope,
  bundleFromJSON,
  isBundleWithDsseEnvelope,
} from "@sigstore/bundle";
import { EngineError } from "../errors.js";
import { asObject, parseJsonBytes } from "./json.js";

export interface ParsedBundle {
  bundle: BundleWithDsseEnvelope;
  payload: Buffer;
  payloadType: string;
  signature: Buffer;
  /** "public-key" (key-pair signature) or "certificate" (keyless, Fulcio). */
  material: "public-key" | "certificate";
  hint?: string;
}

export function parseBundle(bytes: Uint8Array): ParsedBundle {
  const obj = asObject(parseJsonBytes(bytes, "sigstore bundle"), "sigstore bundle");
  if (typeof obj.mediaType !== "string")
    throw new EngineError("MALFORMED", "sigstore bundle has no mediaType");
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(obj);
  } catch (e) {
    // ValidationError lists the fields; protobuf decoding of wrong types throws TypeErrors.
    const fields = (e as { fields?: unknown }).fields;
    const detail = Array.isArray(fields)
      ? `: ${fields.slice(0, 5).join(", ")}`
      : e instanceof Error
        ? `: ${e.message.slice(0, 160)}`
        : "";
    throw new EngineError("MALFORMED", `sigstore bundle is invalid${detail}`, { cause: e });
  }
  if (!isBundleWithDsseEnvelope(bundle)) {
    throw new EngineError(
      "UNSUPPORTED",
      "sigstore bundle holds a message signature, not a DSSE envelope (not a cosign image signature)",
    );
  }
  const env = bundle.content.dsseEnvelope;
  const sig = env.signatures[0]?.sig;
  if (env.signatures.length !== 1 || sig === undefined || sig.length === 0) {
    throw new EngineError("MALFORMED", "DSSE envelope must carry exactly one signature");
  }
  const vm = bundle.verificationMaterial.content;
  switch (vm.$case) {
    case "publicKey":
      return {
        bundle,
        payload: env.payload,
        payloadType: env.payloadType,
        signature: sig,
        material: "public-key",
        hint: vm.publicKey.hint,
      };
    case "certificate":
    case "x509CertificateChain":
      return {
        bundle,
        payload: env.payload,
        payloadType: env.payloadType,
        signature: sig,
        material: "certificate",
      };
    default:
      throw new EngineError("MALFORMED", "sigstore bundle has no verification material");
  }
}

/** DSSE pre-authentication encoding: "DSSEv1" SP len(type) SP type SP len(body) SP body. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const t = Buffer.from(payloadType, "utf8");
  return Buffer.concat([Buffer.from(`DSSEv1 ${t.length} `), t, Buffer.from(` ${payload.length} `), payload]);
}
