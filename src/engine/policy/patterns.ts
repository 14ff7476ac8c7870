// Image patterns for spec.images / spec.exemptImages.
//
// Semantics (documented in docs and the CRD):
//   - Patterns are matched against the *canonical* identity of the reference (identity.ts:
//     "docker.io/library/busybox:1.36", "127.0.0.1:5000/team/app@sha256:…", host lower
//     case, ":443" dropped, index.docker.io / registry-1.docker.io spelled docker.io, the
//     tag dropped beside a digest as containerd does).
//   - Patterns are canonicalised the same way first: "busybox" means
//     "docker.io/library/busybox", "acme/app" means "docker.io/acme/app",
//     "Registry.Example:443/team/**" means "registry.example/team/**".
//   - `*` matches any run of characters except "/"; `**` matches any run including "/".
//     Every other character is literal. Matching is anchored at both ends.
//   - A pattern without a tag or digest ("ghcr.io/acme/*") matches the repository whatever
//     the tag or digest; a pattern with one ("ghcr.io/acme/app:1.*",
//     "registry.k8s.io/pause@sha256:…") must match the whole reference.

import { canonicalNamePattern, canonicalReference, splitPattern } from "../identity.js";

/** The repository part of a reference: drops "@digest" and then ":tag". */
export function repositoryOf(reference: string): string {
  const at = reference.indexOf("@");
  const noDigest = at >= 0 ? reference.slice(0, at) : reference;
  const colon = noDigest.lastIndexOf(":");
  const slash = noDigest.lastIndexOf("/");
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

function hasTagOrDigest(pattern: string): boolean {
  return repositoryOf(pattern) !== pattern;
}

/**
 * Spells a pattern the way canonical identities are spelled (identity.ts): Docker Hub
 * defaults for short names, host lower case, ":443" dropped, Docker Hub host aliases
 * unified; a tag beside a digest is dropped, as containerd drops it.
 */
export function normalisePattern(pattern: string): string {
  const { name, tag, digest } = splitPattern(pattern);
  const n = canonicalNamePattern(name);
  if (digest !== undefined) return `${n}@${digest}`;
  return tag !== undefined ? `${n}:${tag}` : n;
}

/** Why a pattern is unusable, or undefined when it is fine. */
export function checkPattern(pattern: string): string | undefined {
  if (pattern.length === 0) return "empty pattern";
  if (pattern.length > 512) return "pattern longer than 512 characters";
  if (/\s/.test(pattern)) return "pattern contains whitespace";
  if (/\*{3,}/.test(pattern)) return 'pattern contains "***" (use "*" or "**")';
  if (/[A-Z]/.test(repositoryOf(pattern).split("/").slice(1).join("/")))
    return "repository paths are lower case in normalised references";
  return undefined;
}

function toRegExp(pattern: string): RegExp {
  let src = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") {
      if (pattern[i + 1] === "*") {
        src += ".*";
        i++;
      } else {
        src += "[^/]*";
      }
    } else {
      src += c.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
    }
  }
  return new RegExp(`^${src}$`);
}

export type ImageMatcher = (reference: string) => boolean;

/** Compiles patterns (already validated) into one matcher; no patterns matches nothing. */
export function compilePatterns(patterns: readonly string[]): ImageMatcher {
  const compiled = patterns.map((p) => {
    const n = normalisePattern(p);
    return { re: toRegExp(n), whole: hasTagOrDigest(n) };
  });
  return (reference: string) => {
    // Compare canonical identities: a re-spelled host neither escapes nor widens a pattern.
    const canonical = canonicalReference(reference);
    if (canonical === undefined) return false;
    reference = canonical;
    const repo = repositoryOf(reference);
    return compiled.some(({ re, whole }) => re.test(reference) || (!whole && re.test(repo)));
  };
}
