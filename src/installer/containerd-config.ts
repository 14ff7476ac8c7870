// The containerd 2.x configuration drop-in that turns on what Tollgate needs: the bindir
// image verifier (pull time) and NRI with external plugin connections (create time).
//
// containerd reads a drop-in only when its main config lists it in `imports` (globs allowed,
// relative paths resolved against the main config's directory). Imports are merged
// *section by section*: a `[plugins."<id>"]` table in a drop-in replaces the main config's
// table for that plugin as a whole. So the drop-in carries over every key the main config
// sets for those two plugins and changes only the keys Tollgate depends on, and the
// installer reports each value it overrides.
import { parseGoDuration } from "../base/duration.js";
import { errorMessage } from "../base/errors.js";
import { parse, stringify } from "smol-toml";
import {
  importCovers,
  isTable,
  PLUGIN,
  readConfigText,
  type Table,
} from "../containerd/config.js";
import { InstallError } from "./errors.js";

export { globToRegExp } from "../containerd/config.js";

export const BINDIR_PLUGIN = PLUGIN.bindir;
export const NRI_PLUGIN = PLUGIN.nri;
export const DEFAULT_DROPIN = "/etc/containerd/conf.d/tollgate.toml";
export const DEFAULT_MAIN_CONFIG = "/etc/containerd/config.toml";
/** The import line the installer tells operators to add. */
export const SUGGESTED_IMPORT = "/etc/containerd/conf.d/*.toml";

export interface DropinSettings {
  binDir: string;
  nriSocket: string;
  /** Explicit values win over the main config's; undefined keeps the main config's or the default. */
  maxVerifiers?: number;
  perVerifierTimeout?: string;
  nriRequestTimeout?: string;
  nriRegistrationTimeout?: string;
  /**
   * containerd ≥ 2.2 only (NRI's built-in default validator): make this NRI plugin required,
   * so containers are NOT created while it is away (fail closed instead of NRI's fail-open).
   * Pods annotated `<tolerateAnnotation>: "true"` (the agent's own) are still created.
   */
  requirePlugin?: { name: string; tolerateAnnotation: string };
}

/** containerd versions whose NRI has the default validator's required_plugins. */
export function supportsRequiredPlugins(containerdVersion: string): boolean {
  const m = /^v?(\d+)\.(\d+)/.exec(containerdVersion.trim());
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > 2 || (maj === 2 && min >= 2);
}

export interface MainConfigInfo {
  /** Host path of the main config. */
  path: string;
  exists: boolean;
  version?: number;
  imports: string[];
  /** The main config's own tables for the two plugins (carried into the drop-in). */
  bindir?: Table;
  nri?: Table;
}

/** Parses the host's main containerd config text (undefined text = file absent). */
export function parseMainConfig(hostPath: string, text: string | undefined): MainConfigInfo {
  if (text === undefined) return { path: hostPath, exists: false, imports: [] };
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (e) {
    throw new InstallError(
      "BAD_CONTAINERD_CONFIG",
      `${hostPath} is not valid TOML (${errorMessage(e).split("\n")[0]}); containerd would not start with it either`,
      { cause: e },
    );
  }
  const imports = Array.isArray(doc.imports) ? doc.imports.filter((x) => typeof x === "string") : [];
  const plugins = isTable(doc.plugins) ? doc.plugins : {};
  const section = (id: string): Table | undefined => {
    const t = plugins[id];
    return isTable(t) ? t : undefined;
  };
  return {
    path: hostPath,
    exists: true,
    ...(typeof doc.version === "number" ? { version: doc.version } : {}),
    imports,
    ...(section(BINDIR_PLUGIN) ? { bindir: section(BINDIR_PLUGIN) } : {}),
    ...(section(NRI_PLUGIN) ? { nri: section(NRI_PLUGIN) } : {}),
  };
}

/** Reads (size-capped) and parses the main config; `hostFile` is where `hostPath` is on this machine. */
export function readMainConfig(hostPath: string, hostFile: string): MainConfigInfo {
  let text: string | undefined;
  try {
    text = readConfigText(hostFile);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT")
      throw new InstallError("BAD_CONTAINERD_CONFIG", `cannot read ${hostPath}: ${errorMessage(e)}`, {
        cause: e,
      });
  }
  return parseMainConfig(hostPath, text);
}

export type ImportStatus =
  | { state: "imported"; by: string }
  | { state: "not-imported"; fix: string }
  | { state: "no-main-config"; fix: string };

/** Does the main config import the drop-in (containerd's glob and relative-path rules)? */
export function importStatus(main: MainConfigInfo, dropinPath: string): ImportStatus {
  const line = `imports = ["${SUGGESTED_IMPORT}"]`;
  if (!main.exists)
    return {
      state: "no-main-config",
      fix: `containerd has no ${main.path}, so it imports nothing: create it with \`version = 3\` and \`${line}\` (or import ${dropinPath} directly)`,
    };
  for (const imp of main.imports)
    if (importCovers(main.path, imp, dropinPath)) return { state: "imported", by: imp };
  return {
    state: "not-imported",
    fix: `add \`${line}\` at the top of ${main.path} (its imports are ${JSON.stringify(main.imports)}); until then containerd ignores ${dropinPath}`,
  };
}

export interface RenderedDropin {
  text: string;
  /** Human notes: each main-config value the drop-in changes. */
  overrides: string[];
  /** Effective values (for the bin_dir position check and timeouts). */
  maxVerifiers: number;
  perVerifierTimeout: string;
  nriRequestTimeout: string;
}

/** Renders the drop-in: the main config's tables for both plugins, with Tollgate's keys set. */
export function renderDropin(s: DropinSettings, main: MainConfigInfo, header: string[] = []): RenderedDropin {
  for (const [k, v] of [
    ["per-verifier timeout", s.perVerifierTimeout],
    ["NRI request timeout", s.nriRequestTimeout],
    ["NRI registration timeout", s.nriRegistrationTimeout],
  ] as const) {
    if (v !== undefined && parseDropinTimeout(v) === undefined)
      throw new InstallError("USAGE", `${k} ${JSON.stringify(v)} is not a Go duration (e.g. "2s", "500ms")`);
  }
  if (s.maxVerifiers !== undefined && !Number.isInteger(s.maxVerifiers))
    throw new InstallError("USAGE", `max verifiers must be an integer, got ${s.maxVerifiers}`);
  const overrides: string[] = [];
  const set = (table: Table, plugin: string, key: string, value: unknown, mainTable: Table | undefined) => {
    const before = mainTable?.[key];
    if (before !== undefined && JSON.stringify(before) !== JSON.stringify(value))
      overrides.push(
        `${plugin}.${key}: ${main.path} has ${JSON.stringify(before)}, drop-in sets ${JSON.stringify(value)}`,
      );
    table[key] = value;
  };
  const keep = <T>(mainTable: Table | undefined, key: string, explicit: T | undefined, def: T): T =>
    explicit ?? ((mainTable?.[key] as T | undefined) !== undefined ? (mainTable![key] as T) : def);

  const bindir: Table = { ...(main.bindir ?? {}) };
  set(bindir, BINDIR_PLUGIN, "bin_dir", s.binDir, main.bindir);
  const maxVerifiers = keep(main.bindir, "max_verifiers", s.maxVerifiers, 10);
  set(bindir, BINDIR_PLUGIN, "max_verifiers", maxVerifiers, main.bindir);
  const perVerifierTimeout = keep(main.bindir, "per_verifier_timeout", s.perVerifierTimeout, "10s");
  set(bindir, BINDIR_PLUGIN, "per_verifier_timeout", perVerifierTimeout, main.bindir);

  const nri: Table = { ...(main.nri ?? {}) };
  set(nri, NRI_PLUGIN, "disable", false, main.nri);
  // An external plugin (the agent) connects over the socket: connections must be allowed.
  set(nri, NRI_PLUGIN, "disable_connections", false, main.nri);
  set(nri, NRI_PLUGIN, "socket_path", s.nriSocket, main.nri);
  const nriRequestTimeout = keep(main.nri, "plugin_request_timeout", s.nriRequestTimeout, "2s");
  set(nri, NRI_PLUGIN, "plugin_request_timeout", nriRequestTimeout, main.nri);
  const reg = keep(main.nri, "plugin_registration_timeout", s.nriRegistrationTimeout, "5s");
  set(nri, NRI_PLUGIN, "plugin_registration_timeout", reg, main.nri);

  if (s.requirePlugin) {
    const dv: Table = isTable(main.nri?.default_validator)
      ? { ...(main.nri!.default_validator as Table) }
      : {};
    dv.enable = true;
    const req = Array.isArray(dv.required_plugins) ? (dv.required_plugins as unknown[]).map(String) : [];
    if (!req.includes(s.requirePlugin.name)) req.push(s.requirePlugin.name);
    dv.required_plugins = req;
    dv.tolerate_missing_plugins_annotation = s.requirePlugin.tolerateAnnotation;
    nri.default_validator = dv;
  }

  const body = stringify({ version: 3, plugins: { [BINDIR_PLUGIN]: bindir, [NRI_PLUGIN]: nri } });
  const text = `${header.map((l) => `# ${l}`.trimEnd()).join("\n")}${header.length ? "\n" : ""}${body}\n`;
  // Round-trip: what we write must parse to what we meant.
  const back = parse(text) as { plugins: Record<string, Table> };
  if (
    back.plugins[BINDIR_PLUGIN]?.bin_dir !== s.binDir ||
    back.plugins[NRI_PLUGIN]?.socket_path !== s.nriSocket
  )
    throw new InstallError("BAD_CONTAINERD_CONFIG", "rendered drop-in does not round-trip (internal error)");
  return { text, overrides, maxVerifiers, perVerifierTimeout, nriRequestTimeout };
}

/**
 * A timeout the drop-in may set: a Go duration without a sign ("10s", "1m30s", "500ms"), in
 * milliseconds. Stricter than Go on purpose: a signed timeout in containerd's config is a mistake.
 */
export function parseDropinTimeout(s: string): number | undefined {
  return /^[+-]/.test(s) ? undefined : parseGoDuration(s);
}
