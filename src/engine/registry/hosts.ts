// containerd host configuration: <certs.d>/<host>/hosts.toml (containerd docs/hosts.md,
// core/remotes/docker/config/hosts.go). Same lookup order, defaults and fallbacks, so the
// engine talks to the registry endpoints containerd itself pulls from.
import { errorMessage } from "../../base/errors.js";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parse as parseToml } from "smol-toml";
import { EngineError } from "../errors.js";
import { registryPort } from "../reference.js";
import type { TlsOptions } from "./http.js";
import { readLocalConfig } from "./local-file.js";

export type Capability = "pull" | "resolve" | "push" | "referrers";
const ALL_CAPS: readonly Capability[] = ["pull", "resolve", "push", "referrers"];

/** One place to send requests for a registry, in the order to try them. */
export interface RegistryEndpoint {
  scheme: "http" | "https";
  /** host[:port] */
  host: string;
  /** API root path, normally "/v2". */
  path: string;
  capabilities: ReadonlySet<Capability>;
  /** TLS material as file paths (resolved against the host dir). */
  tlsFiles?: { ca?: string[]; client?: Array<[string, string]>; skipVerify?: boolean };
  header?: Record<string, string[]>;
  /** True when this endpoint is not the registry itself (containerd adds `?ns=<registry>`). */
  mirror: boolean;
}

const MAX_HOSTS_TOML = 256 * 1024;

function isLoopbackHost(hostname: string): boolean {
  if (hostname === "localhost") return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)) return true;
  return hostname === "::1" || hostname === "0:0:0:0:0:0:0:1";
}

function hostnameOf(host: string): string {
  if (host.startsWith("[")) return host.slice(1, host.indexOf("]"));
  const i = host.lastIndexOf(":");
  return i >= 0 ? host.slice(0, i) : host;
}

export function isLocalhost(host: string): boolean {
  return isLoopbackHost(hostnameOf(host));
}

/** Directories containerd tries for `host`: "host_port_" (if port), "host:port", "_default". */
export function hostDirCandidates(root: string, host: string): string[] {
  const out: string[] = [];
  const idx = host.lastIndexOf(":");
  if (idx > 0 && !host.endsWith("]"))
    out.push(path.join(root, `${host.slice(0, idx)}_${host.slice(idx + 1)}_`));
  out.push(path.join(root, host), path.join(root, "_default"));
  return out;
}

function isProxy(endpointHost: string, registry: string): boolean {
  if (endpointHost === registry) return false;
  return !(registry === "docker.io" && endpointHost === "registry-1.docker.io");
}

/** The endpoint containerd uses when nothing is configured. */
export function defaultEndpoint(registry: string): RegistryEndpoint {
  const caps = new Set<Capability>(ALL_CAPS);
  if (registry === "docker.io") {
    return { scheme: "https", host: "registry-1.docker.io", path: "/v2", capabilities: caps, mirror: false };
  }
  if (isLocalhost(registry)) {
    const port = registryPort(registry);
    // containerd: default/443 port → https (skip verify); 80 → http; other ports → http.
    if (port === undefined || port === "443") {
      return {
        scheme: "https",
        host: registry,
        path: "/v2",
        capabilities: caps,
        tlsFiles: { skipVerify: true },
        mirror: false,
      };
    }
    return { scheme: "http", host: registry, path: "/v2", capabilities: caps, mirror: false };
  }
  return { scheme: "https", host: registry, path: "/v2", capabilities: caps, mirror: false };
}

function strList(v: unknown, what: string): string[] {
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  throw new EngineError("INVALID_CONFIG", `invalid type for "${what}" in hosts.toml`);
}

function absPath(p: string, baseDir: string): string {
  return path.isAbsolute(p) ? p : path.join(baseDir, p);
}

function parseHostEntry(
  server: string,
  cfg: Record<string, unknown>,
  baseDir: string,
  registry: string,
): RegistryEndpoint {
  let s = server;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s) && !/^https?:\/\//i.test(s)) {
    throw new EngineError("INVALID_CONFIG", `hosts.toml: unsupported scheme in "${server}"`);
  }
  if (!s.startsWith("http")) s = `https://${s}`;
  let u: URL;
  try {
    u = new URL(s);
  } catch (e) {
    throw new EngineError("INVALID_CONFIG", `hosts.toml: unable to parse server "${server}"`, { cause: e });
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new EngineError("INVALID_CONFIG", `hosts.toml: unsupported scheme in "${server}"`);
  }
  const overridePath = cfg.override_path === true;
  let p = u.pathname === "/" ? "" : path.posix.normalize(u.pathname).replace(/\/$/, "");
  if (!overridePath && !p.endsWith("/v2")) p = `${p}/v2`;
  const capsRaw = cfg.capabilities;
  let caps: Set<Capability>;
  if (capsRaw === undefined || (Array.isArray(capsRaw) && capsRaw.length === 0)) caps = new Set(ALL_CAPS);
  else {
    caps = new Set();
    for (const c of strList(capsRaw, "capabilities")) {
      const lc = c.toLowerCase() as Capability;
      if (!ALL_CAPS.includes(lc))
        throw new EngineError("INVALID_CONFIG", `hosts.toml: unknown capability "${c}"`);
      caps.add(lc);
    }
  }
  const ep: RegistryEndpoint = {
    scheme: u.protocol === "http:" ? "http" : "https",
    host: u.host,
    path: p,
    capabilities: caps,
    mirror: isProxy(u.host, registry),
  };
  const tlsFiles: NonNullable<RegistryEndpoint["tlsFiles"]> = {};
  let hasTls = false;
  if (cfg.skip_verify !== undefined) {
    if (typeof cfg.skip_verify !== "boolean")
      throw new EngineError("INVALID_CONFIG", `hosts.toml: "skip_verify" must be a boolean`);
    tlsFiles.skipVerify = cfg.skip_verify;
    hasTls = true;
  }
  if (cfg.ca !== undefined) {
    tlsFiles.ca = strList(cfg.ca, "ca").map((c) => absPath(c, baseDir));
    hasTls = true;
  }
  if (cfg.client !== undefined) {
    const pairs: Array<[string, string]> = [];
    const c = cfg.client;
    if (typeof c === "string") pairs.push([absPath(c, baseDir), ""]);
    else if (Array.isArray(c)) {
      for (const item of c) {
        if (typeof item === "string") pairs.push([absPath(item, baseDir), ""]);
        else if (Array.isArray(item) && item.length === 2 && item.every((x) => typeof x === "string")) {
          pairs.push([absPath(item[0] as string, baseDir), absPath(item[1] as string, baseDir)]);
        } else throw new EngineError("INVALID_CONFIG", `hosts.toml: invalid "client" entry`);
      }
    } else throw new EngineError("INVALID_CONFIG", `hosts.toml: invalid type for "client"`);
    tlsFiles.client = pairs;
    hasTls = true;
  }
  if (hasTls) ep.tlsFiles = tlsFiles;
  if (cfg.header !== undefined) {
    if (typeof cfg.header !== "object" || cfg.header === null || Array.isArray(cfg.header)) {
      throw new EngineError("INVALID_CONFIG", `hosts.toml: "header" must be a table`);
    }
    ep.header = {};
    for (const [k, v] of Object.entries(cfg.header as Record<string, unknown>))
      ep.header[k] = strList(v, `header.${k}`);
  }
  return ep;
}

/**
 * Parses a hosts.toml text for `registry` (host dir `baseDir`). Returns the endpoints in
 * the order containerd tries them: `[host."…"]` tables in file order, then `server`.
 * A file without `server` falls back to the registry's default endpoint last.
 */
export function parseHostsToml(text: string, registry: string, baseDir: string): RegistryEndpoint[] {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw new EngineError(
      "INVALID_CONFIG",
      `hosts.toml in ${baseDir} is not valid TOML: ${errorMessage(e)}`,
      {
        cause: e,
      },
    );
  }
  const out: RegistryEndpoint[] = [];
  const hosts = doc.host;
  if (hosts !== undefined) {
    if (typeof hosts !== "object" || hosts === null || Array.isArray(hosts)) {
      throw new EngineError("INVALID_CONFIG", `hosts.toml: "host" must be a table of tables`);
    }
    // smol-toml keeps insertion (= file) order for table keys, like containerd's getSortedHosts.
    for (const [name, cfg] of Object.entries(hosts as Record<string, unknown>)) {
      if (typeof cfg !== "object" || cfg === null || Array.isArray(cfg)) {
        throw new EngineError("INVALID_CONFIG", `hosts.toml: host "${name}" must be a table`);
      }
      out.push(parseHostEntry(name, cfg as Record<string, unknown>, baseDir, registry));
    }
  }
  const { host: _h, server, ...top } = doc;
  if (server !== undefined) {
    if (typeof server !== "string" || server === "")
      throw new EngineError("INVALID_CONFIG", `hosts.toml: "server" must be a string`);
    out.push(parseHostEntry(server, top, baseDir, registry));
  } else {
    // No server: containerd fills in the default host, with the top-level settings applied.
    const def = defaultEndpoint(registry);
    const withTop = parseHostEntry(`${def.scheme}://${def.host}`, top, baseDir, registry);
    if (withTop.tlsFiles === undefined && def.tlsFiles) withTop.tlsFiles = def.tlsFiles;
    out.push(withTop);
  }
  return out;
}

/** Endpoints for `registry` from `<hostsDir>` (containerd's config_path), or the default. */
export function loadHostEndpoints(hostsDir: string | undefined, registry: string): RegistryEndpoint[] {
  if (hostsDir) {
    for (const dir of hostDirCandidates(hostsDir, registry)) {
      try {
        if (!statSync(dir).isDirectory()) continue;
      } catch {
        continue;
      }
      const file = path.join(dir, "hosts.toml");
      const text = readLocalConfig(file, MAX_HOSTS_TOML);
      if (text === undefined || text.trim() === "") return [defaultEndpoint(registry)];
      return parseHostsToml(text, registry, dir);
    }
  }
  return [defaultEndpoint(registry)];
}

/** Reads the PEM files an endpoint names (done once per endpoint, at client use). */
export function loadTls(ep: RegistryEndpoint): TlsOptions | undefined {
  const f = ep.tlsFiles;
  if (!f) return undefined;
  const read = (p: string) => {
    try {
      return readFileSync(p, "utf8");
    } catch (e) {
      throw new EngineError(
        "INVALID_CONFIG",
        `cannot read TLS file ${p} for ${ep.host}: ${errorMessage(e)}`,
        {
          cause: e,
        },
      );
    }
  };
  const out: TlsOptions = {};
  if (f.skipVerify) out.insecureSkipVerify = true;
  if (f.ca) out.ca = f.ca.map(read);
  const pair = f.client?.[0];
  if (pair) {
    const cert = read(pair[0]);
    out.cert = cert;
    out.key = pair[1] ? read(pair[1]) : cert;
  }
  return out;
}
