// Exempt image patterns (config policy.exemptImages). Kept free of the engine's heavy
// imports: the pull verifier consults it even when it can load nothing else (identity.ts
// and reference.ts are small and import nothing but errors.ts).
//
// Names are compared as canonical identities (engine/identity.ts), like policy patterns: a
// re-spelled registry host ("REG.example:443", "index.docker.io") neither escapes nor
// widens an exemption, and a tag beside a digest is dropped as containerd drops it.
import { canonicalNamePattern, imageIdentity, splitPattern } from "../engine/identity.js";

export interface RefParts {
  /** Canonical registry/repository. */
  name: string;
  tag?: string;
  digest?: string;
}

/** A reference's canonical parts; undefined when it is not a valid image name. */
export function splitReference(ref: string): RefParts | undefined {
  try {
    const id = imageIdentity(ref.trim());
    return { name: id.repository, tag: id.tag, digest: id.digest };
  } catch {
    return undefined;
  }
}

function globToRegExp(glob: string, segment: string): RegExp {
  let re = "";
  const subtree = glob.endsWith("/**");
  const body = subtree ? glob.slice(0, -3) : glob;
  for (const ch of body) {
    if (ch === "*") re += segment;
    else re += ch.replace(/[.+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}${subtree ? "(?:/.*)?" : ""}$`);
}

export class ExemptImages {
  private readonly rules: Array<{ pattern: string; name: RegExp; tag?: RegExp; digest?: string }>;

  constructor(patterns: readonly string[]) {
    this.rules = patterns.map((pattern) => {
      const parts = splitPattern(pattern);
      // A digest pins the content; a tag beside it says nothing more (containerd drops it).
      const tag = parts.digest === undefined ? parts.tag : undefined;
      return {
        pattern,
        name: globToRegExp(canonicalNamePattern(parts.name), "[^/]*"),
        tag: tag === undefined ? undefined : globToRegExp(tag, "[^/]*"),
        digest: parts.digest,
      };
    });
  }

  get size(): number {
    return this.rules.length;
  }

  /**
   * The first pattern that exempts `reference` (with the resolved `digest`, if known), or
   * undefined. A pattern with a digest needs that exact digest; a pattern with a tag needs
   * the reference's tag to match.
   */
  match(reference: string, digest?: string): string | undefined {
    const r = splitReference(reference);
    if (r === undefined) return undefined;
    const actualDigest = digest ?? r.digest;
    for (const rule of this.rules) {
      if (!rule.name.test(r.name)) continue;
      if (rule.digest !== undefined && rule.digest !== actualDigest) continue;
      if (rule.tag !== undefined && (r.tag === undefined || !rule.tag.test(r.tag))) continue;
      return rule.pattern;
    }
    return undefined;
  }
}
