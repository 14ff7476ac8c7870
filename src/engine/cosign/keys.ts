// Trusted public keys and raw signature verification the way cosign verifies key-pair
// signatures: ECDSA (DER signature; the curve's hash, SHA-256 also accepted as older cosign
// used it for every curve), RSA PKCS#1 v1.5 or PSS with SHA-256, and pure Ed25519.
import crypto from "node:crypto";
import { EngineError } from "../errors.js";
import { type CosignKey, LIMITS } from "./types.js";

export interface TrustedKey {
  name: string;
  key: crypto.KeyObject;
  /** base64(SHA-256(SPKI DER)): the hint cosign writes into bundles. */
  hint: string;
  algorithm: string;
}

const CURVE_HASH: Record<string, string> = {
  prime256v1: "sha256",
  secp384r1: "sha384",
  secp521r1: "sha512",
};

export function loadKeys(keys: CosignKey[] | undefined): TrustedKey[] {
  if (keys === undefined) return [];
  if (!Array.isArray(keys)) throw new EngineError("INVALID_CONFIG", "cosign keys must be a list");
  if (keys.length > LIMITS.maxKeys)
    throw new EngineError("INVALID_CONFIG", `more than ${LIMITS.maxKeys} cosign keys`);
  return keys.map((k, i) => loadKey(k, i));
}

function loadKey(k: CosignKey, i: number): TrustedKey {
  const name = typeof k?.name === "string" && k.name !== "" ? k.name : `key[${i}]`;
  if (typeof k?.pem !== "string" || !/-----BEGIN (RSA )?PUBLIC KEY-----/.test(k.pem)) {
    throw new EngineError("INVALID_CONFIG", `cosign key ${name} is not a PUBLIC KEY PEM`);
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPublicKey(k.pem);
  } catch (e) {
    throw new EngineError("INVALID_CONFIG", `cosign key ${name} could not be parsed`, { cause: e });
  }
  let algorithm: string;
  switch (key.asymmetricKeyType) {
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? "";
      if (!(curve in CURVE_HASH))
        throw new EngineError("INVALID_CONFIG", `cosign key ${name} uses unsupported curve ${curve}`);
      algorithm = `ecdsa-${curve}`;
      break;
    }
    case "rsa": {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048)
        throw new EngineError(
          "INVALID_CONFIG",
          `cosign key ${name} is RSA-${bits}; at least 2048 bits required`,
        );
      algorithm = `rsa-${bits}`;
      break;
    }
    case "ed25519":
      algorithm = "ed25519";
      break;
    default:
      throw new EngineError(
        "INVALID_CONFIG",
        `cosign key ${name} has unsupported type ${key.asymmetricKeyType}`,
      );
  }
  const der = key.export({ type: "spki", format: "der" });
  const hint = crypto.createHash("sha256").update(der).digest("base64");
  return { name, key, hint, algorithm };
}

/** True when `sig` is a valid signature by `k` over `data`. Never throws for bad input. */
export function verifyRaw(k: TrustedKey, data: Uint8Array, sig: Uint8Array): boolean {
  try {
    switch (k.key.asymmetricKeyType) {
      case "ec": {
        const h = CURVE_HASH[k.key.asymmetricKeyDetails?.namedCurve ?? ""] ?? "sha256";
        const opts = { key: k.key, dsaEncoding: "der" as const };
        return (
          crypto.verify(h, data, opts, sig) || (h !== "sha256" && crypto.verify("sha256", data, opts, sig))
        );
      }
      case "rsa":
        return (
          crypto.verify("sha256", data, { key: k.key, padding: crypto.constants.RSA_PKCS1_PADDING }, sig) ||
          crypto.verify(
            "sha256",
            data,
            {
              key: k.key,
              padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
              saltLength: crypto.constants.RSA_PSS_SALTLEN_AUTO,
            },
            sig,
          )
        );
      case "ed25519":
        return crypto.verify(null, data, k.key, sig);
      default:
        return false;
    }
  } catch {
    // A malformed DER signature makes OpenSSL throw; that is just "does not verify".
    return false;
  }
}

/** The first trusted key that verifies the signature, else undefined. */
export function findSigner(
  keys: TrustedKey[],
  data: Uint8Array,
  sig: Uint8Array,
  hint?: string,
): TrustedKey | undefined {
  // The hint is unauthenticated: it only orders the attempts.
  const ordered =
    hint === undefined
      ? keys
      : [...keys.filter((k) => k.hint === hint), ...keys.filter((k) => k.hint !== hint)];
  return ordered.find((k) => verifyRaw(k, data, sig));
}
