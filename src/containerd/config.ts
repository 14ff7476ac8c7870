// What Tollgate knows about containerd 2.x's configuration files, shared by `tollgate doctor`
// (reads the effective config) and `tollgate install` (writes a drop-in and checks that the
// main config imports it): plugin ids, bounded TOML file loading, and how
// containerd resolves `imports` (clean the path, relative to the importing file's directory,
// and only an entry containing `*` is a filepath.Glob pattern).
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parse } from "smol-toml";

export const PLUGIN = {
  nri: "io.containerd.nri.v1.nri",
  bindir: "io.containerd.image-verifier.v1.bindir",
  images: "io.containerd.cri.v1.images",
  criV2: "io.containerd.grpc.v1.cri",
  transfer: "io.containerd.transfer.v1.local",
} as const;

/** Larger config files are refused rather than read (a real one is a few KB). */
export const MAX_CONFIG_BYTES = 4 << 20;

export type Table = Record<string, unknown>;

export function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** A regular file of at most MAX_CONFIG_BYTES, as text. Throws (ENOENT keeps its code). */
export function readConfigText(file: string): string {
  const st = statSync(file);
  if (!st.isFile()) throw new Error("not a regular file");
  if (st.size > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
  return readFileSync(file, "utf8");
}

/** readConfigText + TOML parse; throws on either. */
export function readTomlFile(file: string): Table {
  return parse(readConfigText(file)) as Table;
}

const escapeRe = (c: string) => c.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");

/**
 * Go filepath.Match syntax (Unix) as an anchored RegExp over a whole path: `*` and `?` never
 * match `/`; `[...]` is a class with ranges, negated by a leading `^` only (`[!...]` is a class
 * that contains `!`, as in Go); `\` escapes the next character. A negated class does not match
 * `/` either: filepath.Glob matches one path element at a time. An unclosed `[` is literal.
 */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "\\" && i + 1 < glob.length) re += escapeRe(glob[++i]!);
    else if (c === "[") {
      const cls = classToRe(glob, i + 1);
      if (cls === undefined) re += "\\[";
      else {
        re += cls.re;
        i = cls.end;
      }
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

/** The class starting after `[` at `start`: its RegExp and the index of its `]`. */
function classToRe(glob: string, start: number): { re: string; end: number } | undefined {
  let i = start;
  const negated = glob[i] === "^";
  if (negated) i++;
  let body = "";
  for (; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "]") return { re: negated ? `[^/${body}]` : `[${body}]`, end: i };
    if (c === "-") body += "-";
    else if (c === "\\" && i + 1 < glob.length) body += escapeRe(glob[++i]!);
    else body += escapeRe(c);
  }
  return undefined;
}

/** One `imports` entry as containerd resolves it: cleaned, relative to the importing file's directory. */
export function resolveImportPath(parent: string, entry: string): string {
  const p = path.normalize(entry);
  return path.isAbsolute(p) ? p : path.join(path.dirname(parent), p);
}

/** Would containerd, reading `parent`, load `file` through the import `entry`? (No file system access.) */
export function importCovers(parent: string, entry: string, file: string): boolean {
  const p = resolveImportPath(parent, entry);
  const f = path.normalize(file);
  return p.includes("*") ? globToRegExp(p).test(f) : p === f;
}

/** containerd's `resolveImports` on this machine's files; `unmatched` = globs that matched nothing. */
export function resolveImports(parent: string, imports: string[]): { paths: string[]; unmatched: string[] } {
  const paths: string[] = [];
  const unmatched: string[] = [];
  for (const entry of imports) {
    const p = resolveImportPath(parent, entry);
    if (p.includes("*")) {
      const m = glob(p);
      if (m.length === 0) unmatched.push(p);
      paths.push(...m);
    } else paths.push(p);
  }
  return { paths, unmatched };
}

/** filepath.Glob: one path element at a time, each directory's names sorted as Go's are. */
function glob(pattern: string): string[] {
  const absolute = pattern.startsWith("/");
  let bases = [absolute ? "/" : "."];
  for (const part of pattern.split("/").filter((s) => s !== "")) {
    const next: string[] = [];
    for (const b of bases) {
      if (!/[*?[\\]/.test(part)) {
        next.push(path.join(b, part));
        continue;
      }
      const re = globToRegExp(part);
      let names: string[];
      try {
        names = readdirSync(b).sort();
      } catch {
        continue;
      }
      for (const n of names) if (re.test(n)) next.push(path.join(b, n));
    }
    bases = next;
  }
  return bases.filter((p) => {
    try {
      statSync(p);
      return true;
    } catch {
      return false;
    }
  });
}
