// Exempt image patterns (config policy.exemptImages). Kept free of engine imports: the
// pull verifier consults it even when it can load nothing else.

export interface RefParts {
  /** registry/path, normalised (docker.io/library/ added for short names). */
  name: string;
  tag?: string;
  digest?: string;
}

/** Docker-style normalisation, enough for matching: short names get docker.io(/library). */
export function splitReference(ref: string): RefParts {
  let rest = ref.trim();
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const first = rest.split("/")[0] ?? "";
  const hasHost = rest.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  let name = hasHost ? rest : `docker.io/${rest}`;
  if (name.startsWith("docker.io/") && name.split("/").length === 2)
    name = `docker.io/library/${name.slice(10)}`;
  if (name.startsWith("index.docker.io/")) name = `docker.io/${name.slice(16)}`;
  if (tag === undefined && digest === undefined) tag = "latest";
  return { name: name.toLowerCase(), tag, digest };
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
      const at = pattern.indexOf("@");
      const digest = at >= 0 ? pattern.slice(at + 1) : undefined;
      let rest = at >= 0 ? pattern.slice(0, at) : pattern;
      const slash = rest.lastIndexOf("/");
      const colon = rest.lastIndexOf(":");
      let tag: string | undefined;
      if (colon > slash) {
        tag = rest.slice(colon + 1);
        rest = rest.slice(0, colon);
      }
      // Normalise the literal part the same way references are (short names → docker.io).
      const norm = rest.includes("*") ? rest : splitReference(rest).name;
      return {
        pattern,
        name: globToRegExp(norm.toLowerCase(), "[^/]*"),
        tag: tag === undefined ? undefined : globToRegExp(tag, "[^/]*"),
        digest,
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
