// containerd's configuration as containerd 2.x reads it: the main file plus its `imports`
// (paths relative to the importing file, `*` globs), merged in load order — tables merged
// key by key, later scalars win, arrays inside plugin tables replaced, top-level arrays
// appended — then the plugin settings the doctor needs, in both config version 2 and 3
// spelling (version 2's CRI image settings live under io.containerd.grpc.v1.cri and are
// migrated into io.containerd.cri.v1.images, which is what containerd 2 does at start-up).
import { isTable, PLUGIN, readTomlFile, resolveImports, type Table } from "../containerd/config.js";

const MAX_FILES = 256;

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
      t = readTomlFile(f);
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
