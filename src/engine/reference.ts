// Docker/OCI image reference parsing and normalisation (the grammar of
// github.com/distribution/reference, normalised the way containerd and kubelet do:
// "busybox" → "docker.io/library/busybox:latest").
import { isDigest, isSupportedDigest } from "../base/digest.js";
import { EngineError } from "./errors.js";

export const DEFAULT_REGISTRY = "docker.io";
export const DEFAULT_TAG = "latest";
const LEGACY_DEFAULT_REGISTRY = "index.docker.io";
const OFFICIAL_REPO_PREFIX = "library/";
const NAME_TOTAL_MAX = 255;
const REFERENCE_MAX = 4096;

export interface ImageReference {
  /** Registry host, with port if any, e.g. "docker.io", "127.0.0.1:5000", "[::1]:5000". */
  registry: string;
  /** Repository path inside the registry, e.g. "library/busybox". */
  repository: string;
  tag?: string;
  /** "<alg>:<hex>" */
  digest?: string;
  /** "registry/repository" */
  readonly name: string;
  /** Short form Docker shows ("busybox:1.36"), only for docker.io references. */
  readonly familiar?: string;
  /** Normalised form: registry/repository[:tag][@digest]. */
  toString(): string;
}

// Grammar pieces (distribution/reference regexp.go).
const alphaNumeric = "[a-z0-9]+";
const separator = "(?:[._]|__|[-]+)";
const pathComponent = `${alphaNumeric}(?:${separator}${alphaNumeric})*`;
const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const domainName = `${domainComponent}(?:\\.${domainComponent})*`;
const ipv6 = "\\[(?:[a-fA-F0-9:]+)\\]";
const host = `(?:${domainName}|${ipv6})`;
const domainAndPort = `${host}(?::[0-9]+)?`;

const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DOMAIN_RE = new RegExp(`^${domainAndPort}$`);
const PATH_RE = new RegExp(`^${pathComponent}(?:/${pathComponent})*$`);
const IDENTIFIER_RE = /^[a-f0-9]{64}$/;


function invalid(input: string, why: string): EngineError {
  const shown = input.length > 200 ? `${input.slice(0, 200)}…` : input;
  return new EngineError("INVALID_REFERENCE", `invalid image reference "${shown}": ${why}`, {
    details: { reference: shown },
  });
}

/**
 * Validates "<alg>:<hex>" (sha256 / sha512, lowercase hex of the exact length): references
 * name content the engine fetches and hashes, so only algorithms it can check are accepted.
 */
export const isValidDigest: (d: string) => boolean = isSupportedDigest;

/** Throws INVALID_REFERENCE unless `d` is a supported digest. */
export function assertDigest(d: string, what = "digest"): void {
  if (!isValidDigest(d)) {
    throw new EngineError(
      "INVALID_REFERENCE",
      `invalid ${what} "${d.slice(0, 160)}": want sha256:<64 hex> or sha512:<128 hex>`,
    );
  }
}

export interface ParseOptions {
  /** Add ":latest" when neither tag nor digest is given (default true, like containerd/kubelet). */
  defaultTag?: boolean;
}

/** Parses and normalises a Docker image reference. Throws EngineError INVALID_REFERENCE. */
export function parseReference(input: string, opts: ParseOptions = {}): ImageReference {
  if (typeof input !== "string" || input.length === 0) throw invalid(String(input), "empty");
  if (input.length > REFERENCE_MAX) throw invalid(input, `longer than ${REFERENCE_MAX} characters`);
  if (/\s/.test(input)) throw invalid(input, "contains whitespace");

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw invalid(input, "malformed digest");
    if (!isValidDigest(digest))
      throw invalid(input, "unsupported digest algorithm or wrong length (sha256/sha512, lowercase hex)");
  }

  // A tag is after the last ':' that comes after the last '/' (so "host:5000/repo" has none).
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const lastColon = rest.lastIndexOf(":");
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG_RE.test(tag)) throw invalid(input, "malformed tag");
  }
  if (rest.length === 0) throw invalid(input, "missing repository name");

  // Split domain the way ParseNormalizedNamed does: the first component is a registry only
  // if it looks like one (has '.' or ':', is "localhost", or has upper case).
  let registry: string;
  let repository: string;
  const slash = rest.indexOf("/");
  const first = slash >= 0 ? rest.slice(0, slash) : "";
  if (slash < 0 || (!/[.:]/.test(first) && first !== "localhost" && first.toLowerCase() === first)) {
    registry = DEFAULT_REGISTRY;
    repository = rest;
  } else {
    registry = first;
    repository = rest.slice(slash + 1);
  }
  if (!DOMAIN_RE.test(registry)) throw invalid(input, `malformed registry host "${registry}"`);
  if (registry === LEGACY_DEFAULT_REGISTRY) registry = DEFAULT_REGISTRY;
  if (registry === DEFAULT_REGISTRY && !repository.includes("/"))
    repository = OFFICIAL_REPO_PREFIX + repository;

  if (repository !== repository.toLowerCase()) throw invalid(input, "repository name must be lowercase");
  if (!PATH_RE.test(repository)) throw invalid(input, "malformed repository name");
  // containerd refuses only a bare 64-hex string (an image ID); "<64 hex>:tag" is a name.
  if (IDENTIFIER_RE.test(input)) {
    throw invalid(input, "a 64-character hex string is an image ID, not a repository name");
  }
  if (registry.length + 1 + repository.length > NAME_TOTAL_MAX) {
    throw invalid(input, `repository name longer than ${NAME_TOTAL_MAX} characters`);
  }
  if (tag === undefined && digest === undefined && (opts.defaultTag ?? true)) tag = DEFAULT_TAG;
  return makeReference(registry, repository, tag, digest);
}

function makeReference(registry: string, repository: string, tag?: string, digest?: string): ImageReference {
  const name = `${registry}/${repository}`;
  const suffix = `${tag !== undefined ? `:${tag}` : ""}${digest !== undefined ? `@${digest}` : ""}`;
  let familiar: string | undefined;
  if (registry === DEFAULT_REGISTRY) {
    const short = repository.startsWith(OFFICIAL_REPO_PREFIX)
      ? repository.slice(OFFICIAL_REPO_PREFIX.length)
      : repository;
    familiar = short + suffix;
  }
  const ref: ImageReference = {
    registry,
    repository,
    name,
    toString: () => name + suffix,
  };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (familiar !== undefined) Object.defineProperty(ref, "familiar", { value: familiar, enumerable: true });
  return ref;
}

/** The normalised string form of a reference ("busybox" → "docker.io/library/busybox:latest"). */
export function normalizeReference(input: string): string {
  return parseReference(input).toString();
}

/** A reference to `digest` in the same repository (the tag is dropped, as containerd pins). */
export function withDigest(ref: ImageReference, digest: string): ImageReference {
  assertDigest(digest);
  return makeReference(ref.registry, ref.repository, undefined, digest);
}

/** Hostname without port or IPv6 brackets. */
export function registryHostname(registry: string): string {
  if (registry.startsWith("[")) return registry.slice(1, registry.indexOf("]"));
  const i = registry.lastIndexOf(":");
  return i >= 0 ? registry.slice(0, i) : registry;
}

/** Port of a registry host string, if given. */
export function registryPort(registry: string): string | undefined {
  const m = /:([0-9]+)$/.exec(registry);
  if (!m) return undefined;
  if (registry.startsWith("[") && !registry.includes("]:")) return undefined;
  return m[1];
}
