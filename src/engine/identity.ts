// Image identity: the one place that decides what an image reference *names*, following
// containerd's own rules so that the gate, the pull path, exemptions, policy patterns,
// cosign's docker-reference check and the CLI agree with what containerd stores and starts.
//
// Two notions, kept apart on purpose:
// - The **stored name** is exactly the spelling containerd's CRI gives a reference
//   (docker.ParseDockerRef): short names get docker.io/library/, `index.docker.io` becomes
//   docker.io, ":latest" is added when nothing is given, and a tag beside a digest is dropped
//   (`repo:tag@sha256:…` is stored as `repo@sha256:…`). Host case and ports are kept. This is
//   what we look up in containerd and what registry access uses.
// - The **canonical identity** is what governance compares: the stored name with the
//   registry host canonicalised (lower case, default port 443 removed, Docker Hub's aliases
//   `index.docker.io` / `registry-1.docker.io` → `docker.io`). Two spellings a tenant can
//   choose for the same registry repository have the same canonical identity, so a policy
//   or an exemption cannot be escaped (or widened) by re-spelling a host.
//
// CRI also accepts image IDs where a name is expected (internal/cri LocalResolve): a full
// digest (`sha256:<64 hex>`) is always an image ID; anything else is first tried as a name
// and, when no such name is stored, as a (possibly short) image ID prefix — `abc123`,
// `sha256:abc123` — which must match exactly one image ID (ambiguous → error).
import { StringMemo } from "../base/memo.js";
import { EngineError } from "./errors.js";
import { DEFAULT_REGISTRY, type ImageReference, isValidDigest, parseReference } from "./reference.js";

const DOCKER_HUB_ALIASES: ReadonlySet<string> = new Set([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
]);
const HTTPS_DEFAULT_PORT = "443";
/** An image ID prefix as CRI's digest set accepts it: hex, optionally behind "sha256:". */
const ID_PREFIX_RE = /^(?:(sha256|sha384|sha512):)?([0-9a-f]*)$/;

/** How CRI reads an image string (the order of internal/cri LocalResolve). */
export type CriImage =
  /** A full digest: an image ID (config digest), never a name. */
  | { kind: "id"; id: string }
  /**
   * A name (`stored` is containerd's spelling). `idPrefix` is set when the same string is
   * also a usable image ID prefix: CRI falls back to it when the name is not stored.
   */
  | { kind: "name"; ref: ImageReference; stored: string; idPrefix?: IdPrefix }
  /** Not a valid name but an ID prefix (e.g. "sha256:abc…" shorter than a digest). */
  | { kind: "id-prefix"; idPrefix: IdPrefix }
  /** Neither: CRI cannot start anything from it. */
  | { kind: "invalid"; error: EngineError };

export interface IdPrefix {
  /** Algorithm when written ("sha256:abc"), else undefined (any algorithm). */
  algorithm?: string;
  hex: string;
}

/** Classifies an image string the way CRI does before it looks anything up. */
export function classifyCriImage(input: string): CriImage {
  if (typeof input !== "string") {
    return { kind: "invalid", error: new EngineError("INVALID_REFERENCE", "image is not a string") };
  }
  // Memoised like canonicalReference: a pure function of the string, asked on every
  // CreateContainer for the same few names. Only names are kept (frozen, so no caller can
  // change what the next one is told); errors and IDs are cheap or rare.
  const known = classifyMemo.get(input);
  if (known) return known;
  const c = classifyUncached(input);
  if (c.kind !== "name") return c;
  Object.freeze(c.ref);
  if (c.idPrefix) Object.freeze(c.idPrefix);
  return classifyMemo.set(input, Object.freeze(c));
}

const classifyMemo = new StringMemo<CriImage>();

function classifyUncached(input: string): CriImage {
  if (isFullDigest(input)) return { kind: "id", id: input };
  const idPrefix = parseIdPrefix(input);
  try {
    const ref = parseReference(input);
    return { kind: "name", ref, stored: storedNameOf(ref), ...(idPrefix ? { idPrefix } : {}) };
  } catch (e) {
    if (idPrefix) return { kind: "id-prefix", idPrefix };
    const error =
      e instanceof EngineError
        ? e
        : new EngineError("INVALID_REFERENCE", `invalid image reference: ${input}`);
    return { kind: "invalid", error };
  }
}

/** `sha256:<64 hex>` / `sha512:<128 hex>` (the digests CRI takes as an image ID outright). */
export function isFullDigest(s: string): boolean {
  return isValidDigest(s) || /^sha384:[0-9a-f]{96}$/.test(s);
}

/** The ID prefix a string stands for in CRI's digest set, if it can match any ID at all. */
export function parseIdPrefix(s: string): IdPrefix | undefined {
  const m = ID_PREFIX_RE.exec(s);
  if (!m) return undefined;
  const hex = m[2] ?? "";
  // An empty prefix would match "the only image" in CRI; never treat it as an identity.
  if (hex.length === 0) return undefined;
  return m[1] ? { algorithm: m[1], hex } : { hex };
}

/** Whether the image ID `id` ("sha256:<hex>") is matched by `prefix` (go-digest digestset rules). */
export function idMatchesPrefix(id: string, prefix: IdPrefix): boolean {
  const i = id.indexOf(":");
  if (i < 0) return false;
  const alg = id.slice(0, i);
  const hex = id.slice(i + 1);
  if (prefix.algorithm !== undefined && prefix.algorithm !== alg) return false;
  return hex.startsWith(prefix.hex);
}

/**
 * The image IDs among `ids` that `prefix` names: exactly one → it; none → undefined;
 * more than one → an AMBIGUOUS error (CRI refuses such a prefix too).
 */
export function lookupIdPrefix(ids: Iterable<string>, prefix: IdPrefix): string | undefined {
  const hits = new Set<string>();
  for (const id of ids) if (idMatchesPrefix(id, prefix)) hits.add(id);
  if (hits.size > 1) {
    throw new EngineError(
      "INVALID_REFERENCE",
      `image ID prefix ${formatIdPrefix(prefix)} is ambiguous: it matches ${hits.size} images`,
    );
  }
  return hits.values().next().value;
}

export function formatIdPrefix(p: IdPrefix): string {
  return p.algorithm ? `${p.algorithm}:${p.hex}` : p.hex;
}

/** containerd's spelling of a parsed reference (ParseDockerRef: the tag goes when a digest is present). */
function storedNameOf(ref: ImageReference): string {
  if (ref.digest !== undefined) return `${ref.name}@${ref.digest}`;
  return `${ref.name}:${ref.tag ?? "latest"}`;
}

/**
 * The name containerd stores for `input` ("busybox" → "docker.io/library/busybox:latest",
 * "r.io/a:v1@sha256:…" → "r.io/a@sha256:…"). Throws INVALID_REFERENCE.
 */
export function storedName(input: string): string {
  // Through the memo of classifyCriImage: the same parse, asked for the same few names.
  const c = classifyCriImage(input);
  if (c.kind === "name") return c.stored;
  return storedNameOf(parseReference(input));
}

/**
 * One registry, however it is spelled: lower case, ":443" dropped, Docker Hub's host names
 * unified to "docker.io". "[::1]:5000" keeps its brackets and port.
 */
export function canonicalRegistry(host: string): string {
  let h = host.toLowerCase();
  if (h.endsWith(`:${HTTPS_DEFAULT_PORT}`) && (!h.startsWith("[") || h.includes("]:"))) {
    h = h.slice(0, -(HTTPS_DEFAULT_PORT.length + 1));
  }
  if (DOCKER_HUB_ALIASES.has(h)) return DEFAULT_REGISTRY;
  return h;
}

export interface ImageIdentity {
  /** containerd's spelling (see storedName). */
  stored: string;
  /** Canonical "registry/repository" (see canonicalRegistry). */
  repository: string;
  tag?: string;
  digest?: string;
  /** Canonical repository + ":tag" or "@digest" (a digest wins, as in containerd). */
  canonical: string;
}

/** The identity of a reference. Throws INVALID_REFERENCE for a string that is not a name. */
export function imageIdentity(
  input: string | ImageReference,
  opts: { defaultTag?: boolean } = {},
): ImageIdentity {
  // A name with the default options is memoised (frozen): exemptions and policy patterns
  // ask for the identity of the same few names on every CreateContainer.
  if (typeof input === "string" && opts.defaultTag === undefined) {
    const known = identityMemo.get(input);
    if (known) return known;
    return identityMemo.set(input, Object.freeze(identityOf(parseReference(input))));
  }
  return identityOf(typeof input === "string" ? parseReference(input, opts) : input);
}

const identityMemo = new StringMemo<ImageIdentity>();

function identityOf(ref: ImageReference): ImageIdentity {
  // Docker Hub's "library/" prefix follows the canonical host, so "registry-1.docker.io/x"
  // names the same wire repository as its canonical spelling: "docker.io/x" (not library/x).
  const repository = `${canonicalRegistry(ref.registry)}/${ref.repository}`;
  const id: ImageIdentity = {
    stored: storedNameOf(ref),
    repository,
    canonical: repository,
  };
  if (ref.digest !== undefined) {
    id.digest = ref.digest;
    id.canonical = `${repository}@${ref.digest}`;
  } else if (ref.tag !== undefined) {
    id.tag = ref.tag;
    id.canonical = `${repository}:${ref.tag}`;
  }
  return id;
}

/** The canonical form of a reference, or undefined when it is not a valid name. */
export function canonicalReference(input: string): string | undefined {
  // Valid names come from imageIdentity's memo (every decision asks for the same few names);
  // an invalid one is refused again each time.
  try {
    return imageIdentity(input).canonical;
  } catch {
    return undefined;
  }
}

/** The canonical repository of a reference (tag and digest dropped), or undefined. */
export function canonicalRepository(input: string): string | undefined {
  try {
    return imageIdentity(input, { defaultTag: false }).repository;
  } catch {
    return undefined;
  }
}

/** Whether two references name the same registry repository (hosts compared canonically). */
export function sameRepository(a: string, b: string): boolean {
  const x = canonicalRepository(a);
  return x !== undefined && x === canonicalRepository(b);
}

/**
 * The name part of an image pattern (no tag or digest), spelled the way canonical
 * identities are, so a pattern and a reference meet whatever host spelling either uses.
 * A literal name is canonicalised in full ("busybox" → "docker.io/library/busybox",
 * "Index.Docker.IO:443/x" → "docker.io/x"). With wildcards, Docker Hub's defaults apply
 * when the first component is a literal non-host path, and a literal host is canonicalised.
 */
export function canonicalNamePattern(name: string): string {
  if (!name.includes("*")) {
    try {
      return imageIdentity(name, { defaultTag: false }).repository;
    } catch {
      // Not a valid literal name (the pattern's validator reports it); fall through.
    }
  }
  const slash = name.indexOf("/");
  if (slash < 0) return name.includes("*") ? name : `${DEFAULT_REGISTRY}/library/${name}`;
  const first = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  if (first.includes("*")) return `${first.toLowerCase()}/${rest}`;
  const isHost =
    first.includes(".") || first.includes(":") || first === "localhost" || first !== first.toLowerCase();
  if (!isHost) return `${DEFAULT_REGISTRY}/${name}`;
  const legacyHub = first === DEFAULT_REGISTRY || first === "index.docker.io";
  const host = canonicalRegistry(first);
  if (legacyHub && !rest.includes("/") && !rest.includes("*")) return `${host}/library/${rest}`;
  return `${host}/${rest}`;
}

/** Splits an image pattern into its name and the ":tag" / "@digest" suffix (kept verbatim). */
export function splitPattern(pattern: string): { name: string; tag?: string; digest?: string } {
  const at = pattern.indexOf("@");
  const digest = at >= 0 ? pattern.slice(at + 1) : undefined;
  let name = at >= 0 ? pattern.slice(0, at) : pattern;
  let tag: string | undefined;
  const colon = name.lastIndexOf(":");
  if (colon > name.lastIndexOf("/")) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  return { name, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}
