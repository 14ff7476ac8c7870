// Input checks shared by both ends of the pull-verdict exchange: the pull verifier (argv and
// stdin from containerd) and the agent's local API (the verifier's request body). No imports
// at run time, so the verifier's fast path stays small.
import type { Descriptor } from "../engine/types.js";

/** OCI digest grammar: algorithm ":" encoded, with a bounded length. */
export const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,256}$/;

/** The descriptor fields Tollgate keeps from untrusted JSON; undefined unless mediaType and digest are strings. */
export function descriptorFromJson(v: unknown): Descriptor | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const d = v as Record<string, unknown>;
  if (typeof d.mediaType !== "string" || typeof d.digest !== "string") return undefined;
  return {
    mediaType: d.mediaType,
    digest: d.digest,
    size: typeof d.size === "number" ? d.size : 0,
    ...(d.annotations && typeof d.annotations === "object"
      ? { annotations: d.annotations as Record<string, string> }
      : {}),
    ...(d.platform && typeof d.platform === "object"
      ? { platform: d.platform as Descriptor["platform"] }
      : {}),
  };
}
