// The dockerConfig credential provider: Docker-style config files (earlier file wins) with
// their credential helpers. Per file, docker's own order: a `credHelpers` entry for the
// host, else the `credsStore` (which then holds every credential), else the `auths` entry.
// A helper is `docker-credential-<name> get`: the server URL on stdin, {ServerURL, Username,
// Secret} on stdout; "credentials not found" means anonymous, a `<token>` username means
// the secret is an OAuth2 refresh token.
import { errorMessage } from "../../../base/errors.js";
import { accessSync, constants, statSync } from "node:fs";
import path from "node:path";
import { EngineError } from "../../errors.js";
import { type Credential, type DockerConfigFile, parseDockerConfigFile } from "../dockerconfig.js";
import { readLocalConfig } from "../local-file.js";
import { type ExecLimits, runPlugin } from "./exec.js";
import type { CredentialAnswer, CredentialProvider, CredentialRequest } from "./types.js";

export interface DockerConfigProviderOptions extends ExecLimits {
  name: string;
  files: readonly string[];
  /** Where to look for docker-credential-<name> (default: the directories of $PATH). */
  helperDirs?: readonly string[];
  /** How long an answer is reused (helpers give no expiry). */
  cacheMs: number;
}

const MAX_CONFIG_BYTES = 1024 * 1024;

/** The server URL docker hands a helper for a host. */
function serverUrlFor(host: string): string {
  return host === "docker.io" ? "https://index.docker.io/v1/" : host;
}

export class DockerConfigProvider implements CredentialProvider {
  readonly type = "dockerConfig";
  readonly name: string;

  constructor(private readonly o: DockerConfigProviderOptions) {
    this.name = o.name;
  }

  private helperDirs(): string[] {
    if (this.o.helperDirs) return [...this.o.helperDirs];
    return (process.env.PATH ?? "").split(path.delimiter).filter((d) => d !== "");
  }

  /** The helper binary's path; throws when no directory has it. */
  helperPath(helper: string): string {
    const file = `docker-credential-${helper}`;
    for (const dir of this.helperDirs()) {
      const p = path.join(dir, file);
      try {
        if (statSync(p).isFile()) return p;
      } catch {
        // not in this directory
      }
    }
    throw new EngineError(
      "REGISTRY_AUTH",
      `credential provider ${this.name}: credential helper ${file} not found in ${this.helperDirs().join(":") || "(no directories)"}`,
      { details: { execFailure: "not-found" } },
    );
  }

  private files(): Array<{ file: string; config: DockerConfigFile }> {
    const out: Array<{ file: string; config: DockerConfigFile }> = [];
    for (const file of this.o.files) {
      const text = readLocalConfig(file, MAX_CONFIG_BYTES);
      if (text !== undefined) out.push({ file, config: parseDockerConfigFile(text, file) });
    }
    return out;
  }

  async get(req: CredentialRequest): Promise<CredentialAnswer> {
    const answer = (credential: Credential | undefined): CredentialAnswer => ({
      credential,
      ttlMs: this.o.cacheMs,
      scope: "registry",
    });
    let files: Array<{ file: string; config: DockerConfigFile }>;
    try {
      files = this.files();
    } catch (e) {
      // A broken file is the operator's to fix: it stays INVALID_CONFIG (a denial, never
      // let through by a fail-open policy).
      const msg = errorMessage(e);
      throw new EngineError("INVALID_CONFIG", `credential provider ${this.name}: ${msg}`, { cause: e });
    }
    for (const { config } of files) {
      const helper = config.credHelpers.get(req.host) ?? config.credsStore;
      if (helper !== undefined) {
        const cred = await this.runHelper(helper, req);
        if (cred) return answer(cred);
        continue;
      }
      const cred = config.auths.get(req.host);
      if (cred) return answer(cred);
    }
    return answer(undefined);
  }

  private async runHelper(helper: string, req: CredentialRequest): Promise<Credential | undefined> {
    const label = `credential provider ${this.name}: docker-credential-${helper}`;
    const file = this.helperPath(helper);
    const res = await runPlugin({
      file,
      args: ["get"],
      input: serverUrlFor(req.host),
      label,
      timeoutMs: this.o.timeoutMs,
      maxOutputBytes: this.o.maxOutputBytes,
      allowNonZeroExit: true,
      ...(req.signal ? { signal: req.signal } : {}),
    });
    const text = res.stdout.toString("utf8").trim();
    // The helper protocol's "nothing stored for this server": anonymous, not a failure.
    if (/^credentials not found/i.test(text)) return undefined;
    if (res.exitCode !== 0) {
      // Helpers print their error on stdout; it is short protocol text, never a secret.
      const why = (text.split("\n")[0] ?? "").slice(0, 200) || res.stderrLine;
      throw new EngineError(
        "REGISTRY_AUTH",
        `${label} failed (exit status ${res.exitCode})${why ? `: ${why}` : ""}`,
        {
          details: { execFailure: "exit" },
        },
      );
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new EngineError("REGISTRY_AUTH", `${label} did not answer with JSON`);
    }
    const d = doc as Record<string, unknown>;
    if (typeof d !== "object" || d === null || typeof d.Secret !== "string" || d.Secret === "")
      throw new EngineError("REGISTRY_AUTH", `${label} answered without a Secret`);
    const username = typeof d.Username === "string" ? d.Username : "";
    if (username === "<token>") return { identityToken: d.Secret };
    return { username, password: d.Secret };
  }

  check(): string[] {
    const problems: string[] = [];
    let files: Array<{ file: string; config: DockerConfigFile }> = [];
    try {
      files = this.files();
    } catch (e) {
      problems.push(errorMessage(e));
    }
    const helpers = new Set<string>();
    for (const { config } of files) {
      if (config.credsStore) helpers.add(config.credsStore);
      for (const h of config.credHelpers.values()) helpers.add(h);
    }
    for (const h of helpers) {
      try {
        accessSync(this.helperPath(h), constants.X_OK);
      } catch (e) {
        problems.push(e instanceof EngineError ? e.message : `docker-credential-${h} is not executable`);
      }
    }
    return problems;
  }
}
