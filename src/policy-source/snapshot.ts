// The on-host snapshot of the last good policy set (kubernetes source). When the agent
// restarts, or the pull verifier runs while no agent listens, the API server may be
// unreachable (or, on the host, not reachable with any credentials at all); the snapshot
// lets them decide exactly as the source last said, for a bounded time.
//
// What it holds: every policy in force as the document it was compiled from plus the trust
// material bytes that compile read (so it recompiles to the same revision, checked), the
// namespaces' annotations, and when the source was last known to be in sync.
// Safety:
//  - written only from a synced source, atomically (temp file 0600 in a 0700 directory,
//    fsync, rename), with a checksum over the body: a torn or edited file is refused;
//  - read only when owned by this user and not readable or writable by group/others;
//  - loading never widens access: a policy that no longer compiles to the recorded
//    revision is dropped (its namespaces fail closed), the configuration (default policy,
//    exemptions) is today's, and past the maximum age nothing in it is used.
import { errorMessage } from "../base/errors.js";
import { createHash } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import type { NamespaceMeta } from "./select.js";

export const SNAPSHOT_FORMAT = "tollgate.dev/policy-snapshot/v1";
/** A snapshot larger than this is refused (a policy set is kilobytes to a few MB). */
export const MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024;

export interface SnapshotPolicy {
  name: string;
  revision: string;
  origin: string;
  doc: unknown;
  /** Trust material the compile read: "Kind/namespace/name#key" → base64 bytes. */
  material: Record<string, string>;
}

export interface SnapshotBody {
  format: typeof SNAPSHOT_FORMAT;
  source: "kubernetes";
  /** When the source was last known to be in sync with the API server (RFC 3339). */
  syncedAt: string;
  writtenAt: string;
  policies: SnapshotPolicy[];
  namespaces: NamespaceMeta[];
}

export class SnapshotError extends Error {
  readonly code = "INVALID_SNAPSHOT";
}

export function materialKey(ref: { kind: string; namespace: string; name: string; key: string }): string {
  return `${ref.kind}/${ref.namespace}/${ref.name}#${ref.key}`;
}

function checksum(bodyJson: string): string {
  return `sha256:${createHash("sha256").update(bodyJson).digest("hex")}`;
}

/** Writes the snapshot atomically: readers see the old file or the new one, never a mix. */
export function writeSnapshot(file: string, body: SnapshotBody): void {
  const json = JSON.stringify(body);
  writeFileAtomic(file, `${JSON.stringify({ checksum: checksum(json), body: JSON.parse(json) })}\n`);
}

/** Temporary file 0600 in a 0700 directory, fsync, rename, fsync of the directory. */
export function writeFileAtomic(file: string, text: string): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    unlinkSync(tmp);
  } catch {
    // not there: the usual case
  }
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  try {
    const dfd = openSync(dir, "r");
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // Directory fsync is best effort (not every filesystem allows it).
  }
}

/** Reads and checks a snapshot. Throws SnapshotError with a sentence saying what is wrong. */
export function readSnapshot(file: string): SnapshotBody {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(file);
  } catch (e) {
    throw new SnapshotError(`cannot read ${file}: ${errorMessage(e)}`);
  }
  if (!st.isFile()) throw new SnapshotError(`${file} is not a regular file`);
  const uid = typeof process.getuid === "function" ? process.getuid() : st.uid;
  if (st.uid !== uid) throw new SnapshotError(`${file} is owned by uid ${st.uid}, not by this user (${uid})`);
  if ((st.mode & 0o077) !== 0)
    throw new SnapshotError(
      `${file} is accessible to group or others (mode ${(st.mode & 0o777).toString(8)})`,
    );
  if (st.size > MAX_SNAPSHOT_BYTES)
    throw new SnapshotError(`${file} is larger than ${MAX_SNAPSHOT_BYTES} bytes`);
  let outer: unknown;
  try {
    outer = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new SnapshotError(`${file} is not valid JSON: ${errorMessage(e)}`);
  }
  if (!isObj(outer) || typeof outer.checksum !== "string" || !isObj(outer.body))
    throw new SnapshotError(`${file} is not a policy snapshot`);
  if (checksum(JSON.stringify(outer.body)) !== outer.checksum)
    throw new SnapshotError(`${file}: checksum mismatch (torn or edited file)`);
  const b = outer.body;
  if (b.format !== SNAPSHOT_FORMAT)
    throw new SnapshotError(`${file}: unknown format ${JSON.stringify(b.format)}`);
  if (typeof b.syncedAt !== "string" || !Number.isFinite(Date.parse(b.syncedAt)))
    throw new SnapshotError(`${file}: syncedAt is not a time`);
  if (!Array.isArray(b.policies) || !Array.isArray(b.namespaces))
    throw new SnapshotError(`${file}: policies and namespaces must be lists`);
  for (const p of b.policies) {
    if (!isObj(p) || typeof p.name !== "string" || typeof p.revision !== "string" || !isObj(p.material))
      throw new SnapshotError(`${file}: malformed policy entry`);
  }
  for (const n of b.namespaces) {
    if (!isObj(n) || typeof n.name !== "string" || !isObj(n.annotations))
      throw new SnapshotError(`${file}: malformed namespace entry`);
  }
  return b as unknown as SnapshotBody;
}

/** Age check shared by every reader: past maxAgeMs nothing in the snapshot may decide. */
export function snapshotExpiry(body: Pick<SnapshotBody, "syncedAt">, maxAgeMs: number): number {
  return Date.parse(body.syncedAt) + maxAgeMs;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
