// Image patterns for spec.images / spec.exemptImages.
//
// Semantics (documented in docs and the CRD):
//   - Patterns are matched against the *normalised* reference the engine receives
//     ("docker.io/library/busybox:1.36", "127.0.0.1:5000/team/app@sha256:…").
//   - Patterns are normalised the same way first: "busybox" means
//     "docker.io/library/busybox", "acme/app" means "docker.io/acme/app".
//   - `*` matches any run of characters except "/"; `**` matches any run including "/".
//     Every other character is literal. Matching is anchored at both ends.
//   - A pattern without a tag or digest ("ghcr.io/acme/*") matches the repository whatever
//     the tag or digest; a pattern with one ("ghcr.io/acme/app:1.*",
//     "registry.k8s.io/pause@sha256:…") must match the whole reference.

const DOCKER_HUB = "docker.io";

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

/** Applies Docker Hub defaults to a pattern whose first component is a literal path name. */
export function normalisePattern(pattern: string): string {
  const first = pattern.split("/")[0] ?? "";
  if (first.includes("*")) return pattern;
  const slash = pattern.indexOf("/");
  if (slash < 0) return `${DOCKER_HUB}/library/${pattern}`;
  const isHost = first.includes(".") || first.includes(":") || first === "localhost";
  if (!isHost) return `${DOCKER_HUB}/${pattern}`;
  if (first === "index.docker.io" || first === "registry-1.docker.io") {
    return `${DOCKER_HUB}${pattern.slice(first.length)}`;
  }
  return pattern;
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
    const repo = repositoryOf(reference);
    return compiled.some(({ re, whole }) => re.test(reference) || (!whole && re.test(repo)));
  };
}
