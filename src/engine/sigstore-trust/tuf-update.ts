// One TUF client run over one on-disk cache directory (tuf-js does the TUF client workflow:
// root rotation chain, timestamp → snapshot → targets, versions, expiry, thresholds,
// lengths and hashes), and the offline reading of that cache for a process that may not
// (or cannot) reach the mirror. Loaded lazily: only agents with a TUF-sourced root pay for it.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Metadata, MetadataKind, type Root, type TargetFile, type Targets } from "@tufjs/models";
import { BaseFetcher, Updater } from "tuf-js";
import { DownloadHTTPError } from "tuf-js/dist/error.js";
import { loadTrustedRoot } from "../cosign/keyless.js";
import { EngineError } from "../errors.js";
import type { TufSource } from "./types.js";

export const TRUSTED_ROOT_TARGET = "trusted_root.json";

export interface TufLimits {
  /** One HTTP request (headers and body). */
  fetchTimeoutMs: number;
  /** A whole refresh (every request of it). */
  refreshTimeoutMs: number;
  /** trusted_root.json, whatever the targets metadata claims. */
  maxTrustedRootBytes: number;
}

export const DEFAULT_LIMITS: TufLimits = {
  fetchTimeoutMs: 10_000,
  refreshTimeoutMs: 60_000,
  maxTrustedRootBytes: 1 << 20,
};

// Metadata caps, tighter than tuf-js's defaults (Sigstore's are a few KB each).
const TUF_CONFIG = {
  maxRootRotations: 64,
  maxDelegations: 8,
  rootMaxLength: 512 * 1024,
  timestampMaxLength: 16 * 1024,
  snapshotMaxLength: 1 << 20,
  targetsMaxLength: 2 << 20,
  // Our fetcher does not retry: the next refresh is the retry.
  fetchRetry: 0,
};

export interface TufResult {
  bytes: Buffer;
  json: unknown;
  digest: string;
  rootVersion: number;
  expires: string;
  fetchedAt: string;
}

/** Plain fetch with a per-request deadline and the refresh's abort signal; no retries. */
class BoundedFetcher extends BaseFetcher {
  constructor(
    private readonly timeoutMs: number,
    private readonly signal: AbortSignal,
  ) {
    super();
  }
  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const res = await fetch(url, {
      headers: { "User-Agent": "tollgate-tuf" },
      signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.signal]),
    });
    if (!res.ok || !res.body) {
      await res.body?.cancel().catch(() => {});
      // tuf-js reads 403/404 on N.root.json as "no newer root": it must get this class.
      throw new DownloadHTTPError(`HTTP ${res.status} for ${url}`, res.status);
    }
    return res.body as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}

const dirs = (dir: string) => ({ metadata: path.join(dir, "metadata"), targets: path.join(dir, "targets") });

async function writeAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode: 0o600 });
  await rename(tmp, file);
}

/** Creates the source's cache directory (root-only) and seeds the initial root once. */
async function prepareDir(src: TufSource, dir: string): Promise<void> {
  const d = dirs(dir);
  await mkdir(d.metadata, { recursive: true, mode: 0o700 });
  await mkdir(d.targets, { recursive: true, mode: 0o700 });
  await writeAtomic(
    path.join(dir, "source.json"),
    `${JSON.stringify({ mirror: src.mirror, initialRootSha256: src.rootDigest }, null, 2)}\n`,
  );
  const rootFile = path.join(d.metadata, "root.json");
  const have = await stat(rootFile).catch(() => undefined);
  if (!have) await writeAtomic(rootFile, src.rootJson);
}

function describeTufError(e: unknown, mirror: string): string {
  const err = e as Error & { cause?: unknown; statusCode?: number };
  const name = err?.constructor?.name ?? "Error";
  let msg = err instanceof Error ? err.message : String(e);
  if (err?.name === "TimeoutError" || /aborted due to timeout/i.test(msg)) msg = "the request timed out";
  else if (err instanceof TypeError && err.cause instanceof Error) msg = `${msg}: ${err.cause.message}`;
  switch (name) {
    case "ExpiredMetadataError":
      return `TUF metadata from ${mirror} has expired (${msg})`;
    case "UnsignedMetadataError":
    case "LengthOrHashMismatchError":
    case "BadVersionError":
    case "RepositoryError":
    case "CryptoError":
      return `TUF metadata from ${mirror} was refused (${name}: ${msg})`;
    case "DownloadLengthMismatchError":
      return `a TUF file from ${mirror} is larger than allowed (${msg})`;
    default:
      return `TUF refresh from ${mirror} failed: ${msg}`;
  }
}

function expiriesOf(metas: Array<{ signed: { expires: string } } | undefined>): string {
  const times = metas
    .filter((m) => m !== undefined)
    .map((m) => Date.parse(m.signed.expires))
    .filter((t) => Number.isFinite(t));
  return new Date(Math.min(...times)).toISOString();
}

async function readMeta(dir: string, role: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await readFile(path.join(dirs(dir).metadata, `${role}.json`), "utf8")) as Record<
      string,
      unknown
    >;
  } catch {
    return undefined;
  }
}

function checkTrustedRootBytes(bytes: Buffer, where: string): unknown {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString("utf8"));
  } catch (e) {
    throw new EngineError("MALFORMED", `${where}: trusted_root.json is not valid JSON`, { cause: e });
  }
  try {
    loadTrustedRoot(json);
  } catch (e) {
    throw new EngineError("MALFORMED", `${where}: ${(e as Error).message}`, { cause: e });
  }
  return json;
}

/** Runs the TUF client workflow against the mirror and returns the verified trusted root. */
export async function refreshFromMirror(
  src: TufSource,
  dir: string,
  limits: TufLimits,
  signal?: AbortSignal,
): Promise<TufResult> {
  await prepareDir(src, dir);
  const d = dirs(dir);
  const deadline = AbortSignal.timeout(limits.refreshTimeoutMs);
  const all = signal ? AbortSignal.any([signal, deadline]) : deadline;
  const options = {
    metadataDir: d.metadata,
    metadataBaseUrl: src.mirror,
    targetDir: d.targets,
    targetBaseUrl: `${src.mirror}/targets`,
    fetcher: new BoundedFetcher(limits.fetchTimeoutMs, all),
    config: TUF_CONFIG,
  };
  let updater: Updater;
  try {
    updater = new Updater(options);
  } catch {
    // A cached root.json that no longer parses or verifies (a torn write): start the chain
    // again from the configured initial root; the walk to the newest root is re-verified.
    await writeAtomic(path.join(d.metadata, "root.json"), src.rootJson);
    try {
      updater = new Updater(options);
    } catch (e) {
      throw new EngineError(
        "INVALID_CONFIG",
        `the initial TUF root for ${src.mirror} cannot start a client: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  let info: TargetFile | undefined;
  let file: string;
  try {
    await updater.refresh();
    info = await updater.getTargetInfo(TRUSTED_ROOT_TARGET);
    if (!info)
      throw new EngineError(
        "NOT_FOUND",
        `the TUF repository at ${src.mirror} has no ${TRUSTED_ROOT_TARGET} target`,
      );
    if (info.length > limits.maxTrustedRootBytes)
      throw new EngineError(
        "TOO_LARGE",
        `${TRUSTED_ROOT_TARGET} at ${src.mirror} is ${info.length} bytes, more than the ${limits.maxTrustedRootBytes}-byte cap`,
      );
    file = (await updater.findCachedTarget(info)) ?? (await updater.downloadTarget(info));
  } catch (e) {
    if (e instanceof EngineError) throw e;
    const why =
      all.aborted && signal?.aborted ? "the refresh was cancelled" : describeTufError(e, src.mirror);
    throw new EngineError("TRUST_ROOT_UNAVAILABLE", why, { cause: e });
  }
  const bytes = await readFile(file);
  const json = checkTrustedRootBytes(bytes, `TUF target from ${src.mirror}`);
  const fetchedAt = new Date().toISOString();
  const metas = await Promise.all(["root", "timestamp", "snapshot", "targets"].map((r) => readMeta(dir, r)));
  const root = metas[0] as { signed: { version: number } } | undefined;
  await writeAtomic(path.join(dir, "last-good.json"), `${JSON.stringify({ fetchedAt })}\n`);
  return {
    bytes,
    json,
    digest: createHash("sha256").update(bytes).digest("hex"),
    rootVersion: root?.signed.version ?? 0,
    expires: expiriesOf(metas as Array<{ signed: { expires: string } } | undefined>),
    fetchedAt,
  };
}

/**
 * The trusted root of an earlier refresh, checked offline: the cached targets metadata must
 * be signed by the cached TUF root's targets keys and name the cached file's length and
 * hashes. Expiry is not enforced here (this is the last good root; callers report it).
 * Undefined when nothing was ever cached; throws when the cache does not verify.
 */
export async function loadFromCache(src: TufSource, dir: string): Promise<TufResult | undefined> {
  const d = dirs(dir);
  const rootRaw = await readMeta(dir, "root");
  const targetsRaw = await readMeta(dir, "targets");
  const target = path.join(d.targets, encodeURIComponent(TRUSTED_ROOT_TARGET));
  const have = await stat(target).catch(() => undefined);
  if (!rootRaw || !targetsRaw || !have) return undefined;
  const where = `the TUF cache of ${src.mirror} (${dir})`;
  let root: Metadata<Root>;
  let targets: Metadata<Targets>;
  let info: TargetFile | undefined;
  try {
    root = Metadata.fromJSON(MetadataKind.Root, rootRaw as never);
    root.verifyDelegate(MetadataKind.Root, root);
    targets = Metadata.fromJSON(MetadataKind.Targets, targetsRaw as never);
    root.verifyDelegate(MetadataKind.Targets, targets);
    info = targets.signed.targets[TRUSTED_ROOT_TARGET];
    if (!info) throw new Error(`its targets metadata names no ${TRUSTED_ROOT_TARGET}`);
    await info.verify(createReadStream(target));
  } catch (e) {
    throw new EngineError("TRUST_ROOT_UNAVAILABLE", `${where} does not verify: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const bytes = await readFile(target);
  const json = checkTrustedRootBytes(bytes, where);
  const lastGood = await readFile(path.join(dir, "last-good.json"), "utf8")
    .then((t) => (JSON.parse(t) as { fetchedAt?: string }).fetchedAt)
    .catch(() => undefined);
  const metas = await Promise.all(["timestamp", "snapshot"].map((r) => readMeta(dir, r)));
  return {
    bytes,
    json,
    digest: createHash("sha256").update(bytes).digest("hex"),
    rootVersion: root.signed.version,
    expires: expiriesOf([root, targets, ...(metas as Array<{ signed: { expires: string } } | undefined>)]),
    fetchedAt: lastGood ?? have.mtime.toISOString(),
  };
}
