// Reading registry answers: digests, JSON documents, Link paging, and HTTP statuses as
// typed errors (the distribution spec's error body quoted, bounded).
import { createHash } from "node:crypto";
import { descriptorFromJson } from "../../base/descriptor.js";
import { isSupportedDigest } from "../../base/digest.js";
import { EngineError } from "../errors.js";
import type { Descriptor } from "../types.js";
import type { HttpResponse } from "./http.js";

export function digestOf(bytes: Uint8Array, algorithm = "sha256"): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
}

export function verifyDigest(bytes: Uint8Array, digest: string, what: string): void {
  const alg = digest.slice(0, digest.indexOf(":"));
  const got = digestOf(bytes, alg);
  if (got !== digest) {
    throw new EngineError("DIGEST_MISMATCH", `${what}: content digest is ${got}, expected ${digest}`, {
      details: { expected: digest, actual: got },
    });
  }
}

export function parseJsonObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (e) {
    throw new EngineError("MALFORMED", `${what} is not valid JSON`, { cause: e });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new EngineError("MALFORMED", `${what} is not a JSON object`);
  }
  return doc as Record<string, unknown>;
}

/** Parses `Link: <url>; rel="next"` (RFC 8288, just enough for distribution paging). */
export function parseNextLink(value: string | undefined): string | undefined {
  if (!value) return undefined;
  for (const part of value.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*(.*)$/.exec(part);
    if (!m) continue;
    if (/(^|;)\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?\s*(;|$)/i.test(m[2] ?? "")) return m[1];
  }
  return undefined;
}

export function statusError(res: HttpResponse, what: string): EngineError {
  const host = res.url.host;
  let detail = "";
  try {
    const j = JSON.parse(res.body.toString("utf8")) as {
      errors?: Array<{ code?: string; message?: string }>;
    };
    const e = j.errors?.[0];
    if (e) detail = `: ${e.code ?? ""} ${e.message ?? ""}`.trimEnd();
  } catch {
    detail = "";
  }
  detail = detail.slice(0, 300);
  const details = { host, status: res.status };
  if (res.status === 404)
    return new EngineError("NOT_FOUND", `${what} not found on ${host}${detail}`, { details });
  if (res.status === 401 || res.status === 403) {
    return new EngineError(
      "REGISTRY_AUTH",
      `registry ${host} refused access to ${what} (HTTP ${res.status}: ${res.status === 401 ? "authentication failed" : "not authorized"})${detail}`,
      { details },
    );
  }
  return new EngineError(
    "REGISTRY_ERROR",
    `registry ${host} answered HTTP ${res.status} for ${what}${detail}`,
    { details },
  );
}

/**
 * A descriptor from untrusted JSON, or undefined when it is not one (skipped, not fatal).
 * Its content is fetched and hashed, so the digest must use an algorithm we can check.
 */
export function toDescriptor(raw: unknown): Descriptor | undefined {
  const d = descriptorFromJson(raw);
  return d && isSupportedDigest(d.digest) ? d : undefined;
}
