// The OCI content descriptor and the one parser from untrusted JSON (registry manifests and
// indexes, the pull verifier's stdin, the agent's API body).
import { isDigest } from "./digest.js";
import { isRecord } from "./record.js";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  artifactType?: string;
  platform?: { os?: string; architecture?: string; variant?: string };
}

/**
 * A descriptor from untrusted JSON, or undefined when it is not one: mediaType a string,
 * digest well-formed (OCI grammar), size a non-negative safe integer. Keeps artifactType,
 * string annotations and the platform's string fields; drops everything else. Callers that
 * hash the content also check `isSupportedDigest`.
 */
export function descriptorFromJson(raw: unknown): Descriptor | undefined {
  if (!isRecord(raw)) return undefined;
  if (typeof raw.mediaType !== "string" || !isDigest(raw.digest)) return undefined;
  if (typeof raw.size !== "number" || !Number.isSafeInteger(raw.size) || raw.size < 0) return undefined;
  const d: Descriptor = { mediaType: raw.mediaType, digest: raw.digest, size: raw.size };
  if (typeof raw.artifactType === "string") d.artifactType = raw.artifactType;
  if (isRecord(raw.annotations)) d.annotations = stringsOnly(raw.annotations);
  if (isRecord(raw.platform)) {
    const p = stringsOnly(raw.platform);
    d.platform = {
      ...(p.os !== undefined ? { os: p.os } : {}),
      ...(p.architecture !== undefined ? { architecture: p.architecture } : {}),
      ...(p.variant !== undefined ? { variant: p.variant } : {}),
    };
  }
  return d;
}

function stringsOnly(o: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) if (typeof v === "string") out[k] = v;
  return out;
}
