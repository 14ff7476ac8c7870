// Putting the verifier into containerd's bindir verifier directory (protocols.md §4).
//
// containerd runs every entry of bin_dir in lexical order and counts every entry: a
// directory or non-executable file fails every pull, and entries past max_verifiers are
// skipped with only a warning (fail-open). So the installer inspects the directory, warns
// about each of those, and never leaves a temporary file inside it: the new binary is
// staged in bin_dir's parent and renamed into place (atomic on one filesystem).
import { errorMessage } from "../base/errors.js";
import { createHash } from "node:crypto";
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import path from "node:path";
import { InstallError } from "./errors.js";

export const DEFAULT_BIN_DIR = "/opt/containerd/image-verifier/bin";
export const DEFAULT_VERIFIER_NAME = "50-tollgate";

export interface BinDirEntry {
  name: string;
  kind: "executable" | "file" | "directory" | "other";
}

/** bin_dir entries in containerd's order (Go os.ReadDir: sorted by byte order). */
export function listBinDir(dir: string): BinDirEntry[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : 1))
    .map((name) => {
      const st = statSafe(path.join(dir, name));
      if (!st) return { name, kind: "other" as const };
      if (st.isDirectory()) return { name, kind: "directory" as const };
      if (!st.isFile()) return { name, kind: "other" as const };
      return { name, kind: st.mode & 0o111 ? ("executable" as const) : ("file" as const) };
    });
}

function statSafe(p: string) {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}

/** Warnings about the directory as it will be once `ours` is in it. */
export function binDirWarnings(
  entries: BinDirEntry[],
  ours: string,
  maxVerifiers: number,
  dir: string,
): string[] {
  const names = [...new Set([...entries.map((e) => e.name), ours])].sort((a, b) =>
    Buffer.from(a) < Buffer.from(b) ? -1 : 1,
  );
  const out: string[] = [];
  const pos = names.indexOf(ours);
  if (maxVerifiers >= 0 && pos >= maxVerifiers) {
    out.push(
      `${ours} is entry ${pos + 1} of ${names.length} in ${dir} but containerd runs only the first ${maxVerifiers} (max_verifiers): it would be SKIPPED and pulls would not be verified; remove entries or raise max_verifiers`,
    );
  } else if (maxVerifiers >= 0 && names.length > maxVerifiers) {
    out.push(
      `${dir} has ${names.length} entries, more than max_verifiers = ${maxVerifiers}: containerd skips the last ${names.length - maxVerifiers} with only a warning`,
    );
  }
  for (const e of entries) {
    if (e.name === ours) continue;
    if (e.kind !== "executable")
      out.push(
        `${path.join(dir, e.name)} is a ${e.kind === "file" ? "non-executable file" : e.kind}: containerd tries to run every entry, so it blocks EVERY pull; remove it`,
      );
  }
  const others = entries.filter((e) => e.name !== ours && e.kind === "executable").map((e) => e.name);
  if (others.length > 0)
    out.push(
      `other verifiers in ${dir} also run on every pull, in this order: ${names.filter((n) => n === ours || others.includes(n)).join(", ")}`,
    );
  return out;
}

/** The first bytes of an ELF executable: the installer ships a self-contained binary, not a script. */
export function assertSelfContained(file: string): void {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw new InstallError(
      "BAD_VERIFIER_BINARY",
      `verifier binary ${file} cannot be read (${(e as NodeJS.ErrnoException).code}); build it with \`node scripts/package-verifier.mjs\``,
      { cause: e },
    );
  }
  const head = Buffer.alloc(4);
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])))
    throw new InstallError(
      "BAD_VERIFIER_BINARY",
      `${file} is not an ELF executable: the host has no Node.js, so install the self-contained verifier (dist/tollgate-verify from scripts/package-verifier.mjs), not a script`,
    );
}

/** Streaming hash: the verifier is ~135 MB and the init container's memory is limited. */
export function sha256File(file: string): string {
  const h = createHash("sha256");
  const buf = Buffer.alloc(1 << 20);
  const fd = openSync(file, "r");
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

export interface PlacedFile {
  path: string;
  changed: boolean;
  sha256: string;
}

/**
 * Copies `source` to `target` with mode `mode` through a temporary file in `stageDir` and a
 * rename. Unchanged content is left alone (no rename, no new inode).
 */
export function placeAtomically(source: string, target: string, mode: number, stageDir: string): PlacedFile {
  const want = sha256File(source);
  if (existsSync(target) && lstatSync(target).isFile() && sha256File(target) === want) {
    if ((statSync(target).mode & 0o7777) !== mode) chmodSync(target, mode);
    return { path: target, changed: false, sha256: want };
  }
  mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
  mkdirSync(stageDir, { recursive: true, mode: 0o755 });
  const tmp = path.join(stageDir, `.${path.basename(target)}.tollgate-tmp-${process.pid}`);
  try {
    copyFileSync(source, tmp);
    chmodSync(tmp, mode);
    const fd = openSync(tmp, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    throw new InstallError(
      "WRITE_FAILED",
      code === "EXDEV"
        ? `cannot rename ${tmp} to ${target}: different filesystems; mount bin_dir's parent directory, not bin_dir alone`
        : `cannot install ${target}: ${errorMessage(e)}`,
      { cause: e },
    );
  }
  return { path: target, changed: true, sha256: want };
}
