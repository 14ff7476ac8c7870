// One digest grammar, the OCI image-spec's:
//   digest    ::= algorithm ":" encoded
//   algorithm ::= component ([+._-] component)*   component ::= [a-z0-9]+
//   encoded   ::= [a-zA-Z0-9=_-]+
// with Tollgate's bounds on the encoded part (32..256 characters: no registered algorithm is
// shorter, and untrusted input stays small). Where content is hashed or compared against a
// hash we compute, callers need a registered algorithm with its exact lowercase-hex length:
// `isSupportedDigest` (sha256 / sha512), or `isSha256Digest` where only sha256 can occur.

const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,256}$/;

/** Registered algorithms Tollgate can hash content with, and their hex lengths. */
const SUPPORTED: Readonly<Record<string, RegExp>> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};

/** Well-formed per the OCI grammar (any algorithm). */
export function isDigest(d: unknown): d is string {
  return typeof d === "string" && DIGEST_RE.test(d);
}

/** sha256:<64 lowercase hex> or sha512:<128 lowercase hex>: content Tollgate can check. */
export function isSupportedDigest(d: unknown): d is string {
  if (!isDigest(d)) return false;
  const i = d.indexOf(":");
  return SUPPORTED[d.slice(0, i)]?.test(d.slice(i + 1)) ?? false;
}

/** sha256:<64 lowercase hex>, for values that are sha256 by construction (containerd chain/diff IDs). */
export function isSha256Digest(d: unknown): d is string {
  return isDigest(d) && d.startsWith("sha256:") && (SUPPORTED.sha256 as RegExp).test(d.slice(7));
}

/** Splits a well-formed digest into algorithm and encoded part. */
export function splitDigest(d: string): { algorithm: string; encoded: string } | undefined {
  if (!isDigest(d)) return undefined;
  const i = d.indexOf(":");
  return { algorithm: d.slice(0, i), encoded: d.slice(i + 1) };
}
