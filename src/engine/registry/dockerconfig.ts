// Credentials from Docker-style config files (~/.docker/config.json, kubelet's
// config.json, containers-auth.json): `auths` entries with base64 `auth` ("user:pass"),
// separate `username`/`password`, or an OAuth2 `identitytoken`. Credential helpers
// (credsStore/credHelpers) are named here and run by the dockerConfig credential provider
// (credentials/docker.ts).
import { EngineError } from "../errors.js";
import { readLocalConfig } from "./local-file.js";

export interface Credential {
  username?: string;
  password?: string;
  /** OAuth2 refresh token ("identitytoken"); exchanged at the token endpoint. */
  identityToken?: string;
}

/** registry host ("docker.io", "127.0.0.1:5000") → credential */
export type CredentialMap = Map<string, Credential>;

const MAX_CONFIG_BYTES = 1024 * 1024;

/** Maps a config `auths` key to the registry host it is for. */
export function authKeyToHost(key: string): string {
  let k = key.trim();
  k = k.replace(/^[a-z]+:\/\//i, "");
  const slash = k.indexOf("/");
  if (slash >= 0) k = k.slice(0, slash);
  k = k.toLowerCase();
  if (k === "index.docker.io" || k === "registry-1.docker.io" || k === "registry.hub.docker.com")
    return "docker.io";
  return k;
}

/** Parses the text of one Docker config file. Throws INVALID_CONFIG on malformed input. */
export function parseDockerConfig(text: string, source = "docker config"): CredentialMap {
  return parseDockerConfigFile(text, source).auths;
}

export interface DockerConfigFile {
  auths: CredentialMap;
  /** The helper for every registry (`credsStore`), when set. */
  credsStore?: string;
  /** registry host → helper name (`credHelpers`). */
  credHelpers: Map<string, string>;
}

const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Parses one Docker config file: `auths`, `credsStore` and `credHelpers`. */
export function parseDockerConfigFile(text: string, source = "docker config"): DockerConfigFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new EngineError("INVALID_CONFIG", `${source} is not valid JSON`, { cause: e });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new EngineError("INVALID_CONFIG", `${source} is not a JSON object`);
  }
  const out: CredentialMap = new Map();
  const file: DockerConfigFile = { auths: out, credHelpers: new Map() };
  const root = doc as Record<string, unknown>;
  if (root.credsStore !== undefined && root.credsStore !== "") {
    if (typeof root.credsStore !== "string" || !HELPER_NAME.test(root.credsStore))
      throw new EngineError("INVALID_CONFIG", `${source}: "credsStore" must be a helper name`);
    file.credsStore = root.credsStore;
  }
  if (root.credHelpers !== undefined) {
    const h = root.credHelpers;
    if (typeof h !== "object" || h === null || Array.isArray(h))
      throw new EngineError("INVALID_CONFIG", `${source}: "credHelpers" must be an object`);
    for (const [key, name] of Object.entries(h as Record<string, unknown>)) {
      if (typeof name !== "string" || !HELPER_NAME.test(name))
        throw new EngineError(
          "INVALID_CONFIG",
          `${source}: credHelpers entry for ${key} must be a helper name`,
        );
      file.credHelpers.set(authKeyToHost(key), name);
    }
  }
  const auths = root.auths;
  if (auths === undefined) return file;
  if (typeof auths !== "object" || auths === null || Array.isArray(auths)) {
    throw new EngineError("INVALID_CONFIG", `${source}: "auths" must be an object`);
  }
  for (const [key, raw] of Object.entries(auths as Record<string, unknown>)) {
    if (typeof raw !== "object" || raw === null) continue;
    const e = raw as Record<string, unknown>;
    const cred: Credential = {};
    if (typeof e.auth === "string" && e.auth !== "") {
      const decoded = Buffer.from(e.auth, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon <= 0)
        throw new EngineError("INVALID_CONFIG", `${source}: "auth" for ${key} is not base64 "user:password"`);
      cred.username = decoded.slice(0, colon);
      cred.password = decoded.slice(colon + 1);
    } else {
      if (typeof e.username === "string") cred.username = e.username;
      if (typeof e.password === "string") cred.password = e.password;
    }
    if (typeof e.identitytoken === "string" && e.identitytoken !== "") cred.identityToken = e.identitytoken;
    if (cred.username === undefined && cred.identityToken === undefined) continue;
    const host = authKeyToHost(key);
    // First file / first entry wins, like docker's lookup order.
    if (!out.has(host)) out.set(host, cred);
  }
  return file;
}

/**
 * Loads credentials from a list of files, in priority order (earlier wins). Missing files are
 * skipped; unreadable or malformed files are an INVALID_CONFIG error (never silently
 * anonymous for a registry the operator configured credentials for).
 */
export function loadDockerConfigs(files: readonly string[]): CredentialMap {
  const out: CredentialMap = new Map();
  for (const f of files) {
    const text = readLocalConfig(f, MAX_CONFIG_BYTES);
    if (text === undefined) continue;
    for (const [host, cred] of parseDockerConfig(text, f)) if (!out.has(host)) out.set(host, cred);
  }
  return out;
}
