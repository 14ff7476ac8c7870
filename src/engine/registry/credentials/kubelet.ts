// kubelet credential provider plugins: the same CredentialProviderConfig file and plugin
// directory kubelet is given (--image-credential-provider-config / -bin-dir), the same exec
// protocol. For an image, every plugin whose matchImages match is asked in config order
// (kubelet combines them, earlier plugins winning); the first answer with an `auth` entry
// matching the image serves it. The answer's cacheKeyType/cacheDuration (else the plugin's
// defaultCacheDuration) tell the resolver how widely and how long to reuse it.

import { parseGoDuration } from "../../../base/duration.js";
import { errorMessage } from "../../../base/errors.js";
import { accessSync, constants, statSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { EngineError } from "../../errors.js";
import type { Credential } from "../dockerconfig.js";
import { readLocalConfig } from "../local-file.js";
import { type ExecLimits, runPlugin } from "./exec.js";
import { imageMatches, matchImageProblem } from "./glob.js";
import type { CredentialAnswer, CredentialProvider, CredentialRequest, CredentialScope } from "./types.js";

const CONFIG_API_VERSIONS = ["kubelet.config.k8s.io/v1", "kubelet.config.k8s.io/v1beta1"];
const PLUGIN_API_VERSIONS = [
  "credentialprovider.kubelet.k8s.io/v1",
  "credentialprovider.kubelet.k8s.io/v1beta1",
];
const MAX_CONFIG_BYTES = 1024 * 1024;

export interface KubeletPlugin {
  name: string;
  matchImages: string[];
  defaultCacheMs: number;
  apiVersion: string;
  args: string[];
  env: Array<{ name: string; value: string }>;
}

/**
 * A kubelet cache duration: Go's time.ParseDuration, in ms, refusing negative values (a
 * negative cache lifetime means nothing). Throws with the reason.
 */
export function parseCacheDuration(s: string): number {
  const ms = parseGoDuration(s);
  if (ms === undefined) throw new Error(`invalid duration ${JSON.stringify(s)}`);
  if (ms < 0) throw new Error(`negative duration ${JSON.stringify(s)}`);
  return ms;
}

/** Parses a CredentialProviderConfig (YAML or JSON); throws INVALID_CONFIG naming every problem. */
export function parseCredentialProviderConfig(text: string, source: string): KubeletPlugin[] {
  const problems: string[] = [];
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new EngineError(
      "INVALID_CONFIG",
      `${source} is not valid YAML/JSON: ${errorMessage(e).split("\n")[0]}`,
    );
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc))
    throw new EngineError("INVALID_CONFIG", `${source} is not a mapping`);
  const d = doc as Record<string, unknown>;
  if (!CONFIG_API_VERSIONS.includes(String(d.apiVersion)))
    problems.push(`apiVersion must be one of ${CONFIG_API_VERSIONS.join(", ")}`);
  if (d.kind !== "CredentialProviderConfig") problems.push("kind must be CredentialProviderConfig");
  const out: KubeletPlugin[] = [];
  if (!Array.isArray(d.providers) || d.providers.length === 0)
    problems.push("providers must be a non-empty list");
  const names = new Set<string>();
  for (const [i, raw] of (Array.isArray(d.providers) ? d.providers : []).entries()) {
    const at = `providers[${i}]`;
    if (typeof raw !== "object" || raw === null) {
      problems.push(`${at}: must be a mapping`);
      continue;
    }
    const p = raw as Record<string, unknown>;
    const name = typeof p.name === "string" ? p.name : "";
    if (!name || name === "." || name === ".." || name.includes("/") || name.includes("\\"))
      problems.push(`${at}.name: must be a plugin file name (no path)`);
    else if (names.has(name)) problems.push(`${at}.name: duplicate provider ${name}`);
    names.add(name);
    const matchImages = Array.isArray(p.matchImages) ? p.matchImages : [];
    if (matchImages.length === 0) problems.push(`${at}.matchImages: must be a non-empty list`);
    for (const [j, mi] of matchImages.entries()) {
      const why = typeof mi === "string" ? matchImageProblem(mi) : "must be a string";
      if (why) problems.push(`${at}.matchImages[${j}]: ${JSON.stringify(mi)} ${why}`);
    }
    let defaultCacheMs = 0;
    if (typeof p.defaultCacheDuration !== "string")
      problems.push(`${at}.defaultCacheDuration: required (e.g. "5m")`);
    else {
      try {
        defaultCacheMs = parseCacheDuration(p.defaultCacheDuration);
      } catch (e) {
        problems.push(`${at}.defaultCacheDuration: ${errorMessage(e)}`);
      }
    }
    if (!PLUGIN_API_VERSIONS.includes(String(p.apiVersion)))
      problems.push(`${at}.apiVersion: must be one of ${PLUGIN_API_VERSIONS.join(", ")}`);
    const args = p.args ?? [];
    if (!Array.isArray(args) || args.some((a) => typeof a !== "string"))
      problems.push(`${at}.args: must be a list of strings`);
    const env = p.env ?? [];
    const envOut: Array<{ name: string; value: string }> = [];
    if (!Array.isArray(env)) problems.push(`${at}.env: must be a list of {name, value}`);
    else
      for (const [j, e] of env.entries()) {
        const ev = e as Record<string, unknown>;
        if (typeof ev?.name !== "string" || ev.name === "" || typeof ev.value !== "string")
          problems.push(`${at}.env[${j}]: needs a name and a string value`);
        else envOut.push({ name: ev.name, value: ev.value });
      }
    if (p.tokenAttributes !== undefined)
      problems.push(
        `${at}.tokenAttributes: service account tokens for plugins are not supported (Tollgate has no pod service account to request them for)`,
      );
    out.push({
      name,
      matchImages: matchImages.filter((x): x is string => typeof x === "string"),
      defaultCacheMs,
      apiVersion: String(p.apiVersion),
      args: Array.isArray(args) ? (args as string[]) : [],
      env: envOut,
    });
  }
  if (problems.length > 0)
    throw new EngineError("INVALID_CONFIG", `${source}: ${problems.join("; ")}`, { details: { problems } });
  return out;
}

const CACHE_KEY_TYPES: Record<string, CredentialScope> = {
  Image: "image",
  Registry: "registry",
  Global: "global",
};

export interface KubeletProviderOptions extends ExecLimits {
  name: string;
  /** The CredentialProviderConfig file. */
  config: string;
  /** The plugin directory. */
  binDir: string;
}

export class KubeletProvider implements CredentialProvider {
  readonly type = "kubelet";
  readonly name: string;
  readonly plugins: KubeletPlugin[];

  /** Reads and validates the config now: a broken file is a start-up error, not a deny later. */
  constructor(private readonly o: KubeletProviderOptions) {
    this.name = o.name;
    const text = readLocalConfig(o.config, MAX_CONFIG_BYTES);
    if (text === undefined)
      throw new EngineError("INVALID_CONFIG", `credential provider ${o.name}: ${o.config} does not exist`);
    this.plugins = parseCredentialProviderConfig(text, o.config);
  }

  /** The plugins whose matchImages match the image, in config order. */
  pluginsFor(image: string): KubeletPlugin[] {
    return this.plugins.filter((p) => p.matchImages.some((m) => imageMatches(m, image)));
  }

  async get(req: CredentialRequest): Promise<CredentialAnswer> {
    let ttlMs = Number.POSITIVE_INFINITY;
    let scope: CredentialScope = "global";
    const narrow = (s: CredentialScope) => {
      const order: CredentialScope[] = ["image", "registry", "global"];
      if (order.indexOf(s) < order.indexOf(scope)) scope = s;
    };
    for (const plugin of this.pluginsFor(req.image)) {
      const r = await this.exec(plugin, req);
      ttlMs = Math.min(ttlMs, r.ttlMs);
      narrow(r.scope);
      if (r.credential) return { credential: r.credential, ttlMs, scope };
    }
    // No plugin serves this image (or none had a matching auth entry): anonymous, and the
    // answer may be reused like the plugins' own (or for a while when no plugin matched).
    return {
      credential: undefined,
      ttlMs: Number.isFinite(ttlMs) ? ttlMs : 60_000,
      scope: Number.isFinite(ttlMs) ? scope : "image",
    };
  }

  private async exec(plugin: KubeletPlugin, req: CredentialRequest): Promise<CredentialAnswer> {
    const label = `kubelet credential provider ${plugin.name}`;
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const e of plugin.env) env[e.name] = e.value;
    const res = await runPlugin({
      file: path.join(this.o.binDir, plugin.name),
      args: plugin.args,
      input: JSON.stringify({
        apiVersion: plugin.apiVersion,
        kind: "CredentialProviderRequest",
        image: req.image,
      }),
      env,
      label,
      timeoutMs: this.o.timeoutMs,
      maxOutputBytes: this.o.maxOutputBytes,
      ...(req.signal ? { signal: req.signal } : {}),
    });
    const bad = (why: string) =>
      new EngineError("REGISTRY_AUTH", `${label} answered ${why}`, { details: { execFailure: "malformed" } });
    let doc: unknown;
    try {
      doc = JSON.parse(res.stdout.toString("utf8"));
    } catch {
      throw bad("something that is not JSON");
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw bad("a non-object");
    const d = doc as Record<string, unknown>;
    if (d.kind !== "CredentialProviderResponse")
      throw bad(`kind ${JSON.stringify(d.kind)}, not CredentialProviderResponse`);
    if (d.apiVersion !== plugin.apiVersion)
      throw bad(`apiVersion ${JSON.stringify(d.apiVersion)}, configured ${plugin.apiVersion}`);
    const scope = CACHE_KEY_TYPES[String(d.cacheKeyType)];
    if (!scope) throw bad(`cacheKeyType ${JSON.stringify(d.cacheKeyType)} (Image, Registry or Global)`);
    let ttlMs = plugin.defaultCacheMs;
    if (d.cacheDuration !== undefined && d.cacheDuration !== null) {
      try {
        ttlMs = parseCacheDuration(String(d.cacheDuration));
      } catch {
        throw bad("an invalid cacheDuration");
      }
    }
    const auth = d.auth ?? {};
    if (typeof auth !== "object" || auth === null || Array.isArray(auth))
      throw bad("an auth that is not a map");
    // kubelet's keyring order: keys in reverse lexical order, the first matching one serves.
    const keys = Object.keys(auth).sort().reverse();
    let credential: Credential | undefined;
    for (const k of keys) {
      let matches: boolean;
      try {
        matches = imageMatches(k, req.image);
      } catch {
        throw bad(`an invalid auth key`);
      }
      if (!matches) continue;
      const a = (auth as Record<string, unknown>)[k] as Record<string, unknown> | null;
      if (typeof a !== "object" || a === null) throw bad("an auth entry that is not an object");
      const username = typeof a.username === "string" ? a.username : "";
      const password = typeof a.password === "string" ? a.password : "";
      credential = { username, password };
      break;
    }
    return { credential, ttlMs, scope };
  }

  check(): string[] {
    const problems: string[] = [];
    for (const p of this.plugins) {
      const file = path.join(this.o.binDir, p.name);
      try {
        if (!statSync(file).isFile()) problems.push(`${file} is not a file`);
        else accessSync(file, constants.X_OK);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        problems.push(
          code === "ENOENT" ? `plugin ${file} does not exist` : `plugin ${file} is not executable`,
        );
      }
    }
    return problems;
  }
}
