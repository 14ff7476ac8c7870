// containerd's configuration as containerd 2.x reads it: the main file plus its `imports`
// (paths relative to the importing file, `*` globs), merged in load order — tables merged
// key by key, later scalars win, arrays inside plugin tables replaced, top-level arrays
// appended — then the plugin settings the doctor needs, in both config version 2 and 3
// spelling (version 2's CRI image settings live under io.containerd.grpc.v1.cri and are
// migrated into io.containerd.cri.v1.images, which is what containerd 2 does at start-up).
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parse } from "smol-toml";

export const MAX_CONFIG_BYTES = 4 << 20;
const MAX_FILES = 256;

export const PLUGIN = {
  nri: "io.containerd.nri.v1.nri",
  bindir: "io.containerd.image-verifier.v1.bindir",
  images: "io.containerd.cri.v1.images",
  criV2: "io.containerd.grpc.v1.cri",
  transfer: "io.containerd.transfer.v1.local",
} as const;

type Table = Record<string, unknown>;

export interface LoadedConfig {
  /** Files read, in merge order. */
  files: string[];
  /** Problems that stop containerd from starting (unreadable import, TOML syntax). */
  errors: Array<{ file: string; message: string }>;
  /** Import patterns that matched nothing (containerd ignores those). */
  unmatchedGlobs: string[];
  /** Effective config version (0/1 = legacy, read with v1 short plugin names mapped). */
  version: number;
  merged: Table;
  disabledPlugins: string[];
  plugins: Table;
}

function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function readToml(file: string): Table {
  const st = statSync(file);
  if (!st.isFile()) throw new Error("not a regular file");
  if (st.size > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
  return parse(readFileSync(file, "utf8")) as Table;
}

/** containerd's `resolveImports`: clean, relative to the importing file, `*` → glob. */
export function resolveImports(parent: string, imports: string[]): { paths: string[]; unmatched: string[] } {
  const paths: string[] = [];
  const unmatched: string[] = [];
  for (const raw of imports) {
    let p = path.normalize(raw);
    if (!path.isAbsolute(p)) p = path.join(path.dirname(parent), p);
    if (p.includes("*")) {
      const m = glob(p);
      if (m.length === 0) unmatched.push(p);
      paths.push(...m);
    } else paths.push(p);
  }
  return { paths, unmatched };
}

/** filepath.Glob for `*`, `?` and `[...]` per path element; results sorted like Go's. */
function glob(pattern: string): string[] {
  const parts = pattern.split("/").filter((s, i) => s !== "" || i === 0);
  let bases = [pattern.startsWith("/") ? "/" : "."];
  for (const part of parts.slice(pattern.startsWith("/") ? 1 : 0)) {
    const next: string[] = [];
    for (const b of bases) {
      if (!/[*?[]/.test(part)) {
        next.push(path.join(b, part));
        continue;
      }
      const re = new RegExp(`^${globPart(part)}$`);
      let names: string[] = [];
      try {
        names = readdirSorted(b);
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

function readdirSorted(dir: string): string[] {
  return readdirSync(dir).sort();
}

function globPart(part: string): string {
  let re = "";
  for (let i = 0; i < part.length; i++) {
    const c = part[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = part.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        re += `[${part
          .slice(i + 1, end)
          .replace(/^\^/, "^")
          .replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return re;
}

/**
 * containerd merges with mergo WithOverride: inside the plugin maps every value a later file
 * sets wins (false and "" included) and tables merge recursively; top-level struct fields
 * only take a later value when it is not empty.
 */
function mergeTables(to: Table, from: Table, emptyOverrides: boolean): void {
  for (const [k, v] of Object.entries(from)) {
    const cur = to[k];
    if (isTable(cur) && isTable(v)) mergeTables(cur, v, emptyOverrides);
    else if (isTable(v)) to[k] = structuredClone(v);
    else if (emptyOverrides || (v !== "" && v !== 0 && v !== false) || !(k in to)) to[k] = v;
  }
}

// containerd's v1 short plugin names (v1MigratePluginName), the ones that matter here.
const V1_NAMES: Record<string, string> = { cri: PLUGIN.criV2 };

/** Loads `file` and everything it imports, as containerd does. Never throws. */
export function loadContainerdConfig(file: string): LoadedConfig {
  const out: LoadedConfig = {
    files: [],
    errors: [],
    unmatchedGlobs: [],
    version: 0,
    merged: {},
    disabledPlugins: [],
    plugins: {},
  };
  const loaded = new Set<string>();
  const pending = [file];
  while (pending.length > 0 && out.files.length < MAX_FILES) {
    const f = pending.shift()!;
    if (loaded.has(f)) continue;
    loaded.add(f);
    let t: Table;
    try {
      t = readToml(f);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      out.errors.push({
        file: f,
        message: err.code === "ENOENT" ? "no such file" : (err.message ?? String(e)).split("\n")[0]!,
      });
      continue;
    }
    out.files.push(f);
    const version = typeof t.version === "number" ? t.version : 0;
    let plugins = isTable(t.plugins) ? t.plugins : {};
    if (version < 2) {
      const renamed: Table = {};
      for (const [k, v] of Object.entries(plugins)) renamed[V1_NAMES[k] ?? k] = v;
      plugins = renamed;
    }
    if (version !== 0) out.version = version;
    if (Array.isArray(t.disabled_plugins))
      for (const p of t.disabled_plugins)
        if (typeof p === "string" && !out.disabledPlugins.includes(p)) out.disabledPlugins.push(p);
    mergeTables(out.plugins, plugins, true);
    const { plugins: _p, imports, disabled_plugins: _d, ...rest } = t;
    mergeTables(out.merged, rest, false);
    if (Array.isArray(imports)) {
      const r = resolveImports(
        f,
        imports.filter((x): x is string => typeof x === "string"),
      );
      out.unmatchedGlobs.push(...r.unmatched);
      pending.push(...r.paths);
    }
  }
  out.merged.plugins = out.plugins;
  return out;
}

export function pluginTable(cfg: LoadedConfig, name: string): Table {
  const v = cfg.plugins[name];
  return isTable(v) ? v : {};
}

/** The CRI image service settings, migrated from version 2 spelling when the config is older than 3. */
export function criImagesConfig(cfg: LoadedConfig): { table: Table; origin: Record<string, string> } {
  const table: Table = structuredClone(pluginTable(cfg, PLUGIN.images));
  const origin: Record<string, string> = {};
  for (const k of Object.keys(table)) origin[k] = `[plugins."${PLUGIN.images}"] ${k}`;
  if (cfg.version < 3) {
    const src = pluginTable(cfg, PLUGIN.criV2);
    for (const k of ["registry", "max_concurrent_downloads", "image_pull_with_sync_fs"]) {
      if (k in src) {
        table[k] = src[k];
        origin[k] = `[plugins."${PLUGIN.criV2}"] ${k}`;
      }
    }
    const ctr = isTable(src.containerd) ? src.containerd : {};
    for (const k of ["disable_snapshot_annotations", "discard_unpacked_layers"]) {
      if (k in ctr) {
        table[k] = ctr[k];
        origin[k] = `[plugins."${PLUGIN.criV2}".containerd] ${k}`;
      }
    }
  }
  return { table, origin };
}

/** Go time.ParseDuration (the subset containerd configs use: ns us µs ms s m h, decimals). */
export function parseGoDuration(s: string): number | undefined {
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$/.exec(s.trim());
  if (!m) return s.trim() === "0" ? 0 : undefined;
  const unit: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    µs: 1e-3,
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
  };
  let total = 0;
  for (const part of s
    .trim()
    .replace(/^[+-]/, "")
    .matchAll(/((?:\d+(?:\.\d*)?|\.\d+))(ns|us|µs|ms|s|m|h)/g))
    total += Number(part[1]) * unit[part[2]!]!;
  return m[1] === "-" ? -total : total;
}

export { isTable };
