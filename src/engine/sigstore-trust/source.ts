// Building a TufSource from what a policy says: the mirror URL (checked), the initial TUF
// root (given, or the public-good instance's root that @sigstore/tuf ships), the interval.
import { createHash } from "node:crypto";
// @sigstore/tuf embeds the public-good instance's TUF root (seeds.json, base64 per mirror):
// the same bytes sigstore-js seeds its cache with. Bundled at build time; no network.
import seeds from "@sigstore/tuf/seeds.json" with { type: "json" };
import type { TufSource } from "./types.js";

/** The public-good Sigstore instance's TUF repository. */
export const PUBLIC_GOOD_MIRROR = "https://tuf-repo-cdn.sigstore.dev";
export const DEFAULT_REFRESH_SECONDS = 3600;
export const MIN_REFRESH_SECONDS = 60;
export const MAX_REFRESH_SECONDS = 7 * 86_400;
/** Cap on an initial TUF root given in a policy (tuf-js reads at most 512 KB of root). */
export const MAX_ROOT_BYTES = 512 * 1024;

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");

/** The initial TUF root shipped for `mirror`, if any (only the public-good instance has one). */
export function embeddedRoot(mirror: string): string | undefined {
  const seed = (seeds as Record<string, { "root.json"?: string }>)[mirror];
  const b64 = seed?.["root.json"];
  return typeof b64 === "string" ? Buffer.from(b64, "base64").toString("utf8") : undefined;
}

/** A sentence saying what is wrong with a mirror URL, or undefined when usable. */
export function checkMirror(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `not a URL: ${JSON.stringify(url.slice(0, 100))}`;
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") return "must be an http(s) URL";
  if (u.username || u.password) return "must not carry credentials";
  if (u.search || u.hash) return "must not have a query or fragment";
  return undefined;
}

/** The mirror as the metadata base URL: no trailing slash (tuf-js joins paths itself). */
export function normaliseMirror(url: string): string {
  return url.replace(/\/+$/, "");
}

/**
 * A sentence saying why `text` cannot start a TUF chain of trust, or undefined. Only the
 * shape is checked here; the signatures are checked by tuf-js when the client starts.
 */
export function checkTufRoot(text: string): string | undefined {
  if (Buffer.byteLength(text, "utf8") > MAX_ROOT_BYTES)
    return `TUF root is larger than ${MAX_ROOT_BYTES} bytes`;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return `TUF root is not valid JSON (${(e as Error).message})`;
  }
  const signed = (doc as { signed?: { _type?: unknown; version?: unknown; roles?: unknown } })?.signed;
  if (typeof doc !== "object" || doc === null || typeof signed !== "object" || signed === null)
    return "TUF root has no `signed` object (expected a root.json with signed and signatures)";
  if (signed._type !== "root")
    return `TUF root's signed._type is ${JSON.stringify(signed._type)}, expected "root" (is this a trusted_root.json? name it under trustedRoot directly)`;
  if (!Number.isInteger(signed.version) || (signed.version as number) < 1)
    return "TUF root's signed.version is not a positive integer";
  if (!Array.isArray((doc as { signatures?: unknown }).signatures)) return "TUF root has no signatures list";
  return undefined;
}

/**
 * Why `text` cannot start a TUF client, or undefined: the root must verify under its own
 * root role keys (threshold), as tuf-js requires of a trusted root. Expiry is not checked:
 * a client walks from an old root to the newest one.
 */
export async function verifyTufRoot(text: string): Promise<string | undefined> {
  // A CommonJS package imported lazily from a code-split ESM bundle only has a default
  // export (esbuild); from source it has named ones. Accept both.
  const mod: typeof import("@tufjs/models") & { default?: typeof import("@tufjs/models") } = await import(
    "@tufjs/models"
  );
  const { Metadata, MetadataKind } = mod.Metadata ? mod : mod.default!;
  try {
    const root = Metadata.fromJSON(MetadataKind.Root, JSON.parse(text));
    root.verifyDelegate(MetadataKind.Root, root);
    return undefined;
  } catch (e) {
    return `TUF root does not verify under its own root keys: ${(e as Error).message}`;
  }
}

export function tufSource(mirror: string, rootJson: string, refreshIntervalSeconds: number): TufSource {
  const m = normaliseMirror(mirror);
  const rootDigest = sha256(rootJson);
  return {
    mirror: m,
    rootJson,
    rootDigest,
    refreshIntervalSeconds,
    id: sha256(`${m}\n${rootDigest}`).slice(0, 32),
  };
}
