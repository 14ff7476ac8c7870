// Signing images in a loopback registry with the real notation / cosign / oras CLIs,
// fully offline (protocols.md §7.2, §7.3). Every helper takes a private config/key dir,
// so tests never read or write the user's ~/.config, ~/.docker or ~/.sigstore.
//
// Note: notation and cosign (tag-schema mode) both read-modify-write the shared referrers
// tag index `sha256-<hex>`; sign one subject sequentially, never in parallel.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { tools } from "./tools.js";

const run = promisify(execFile);

export interface CliResult {
  stdout: string;
  stderr: string;
}

async function cli(bin: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(bin, args, {
      env,
      cwd,
      encoding: "utf8",
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { stdout, stderr };
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string };
    throw new Error(`${path.basename(bin)} ${args.join(" ")} failed: ${err.message}\n${err.stderr ?? ""}`, {
      cause: e,
    });
  }
}

/** Minimal env: no inherited DOCKER_CONFIG / XDG dirs leaking the user's credentials. */
function baseEnv(home: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home };
}

// ---------------------------------------------------------------------------------------
// notation

export interface NotationConfig {
  /** XDG_CONFIG_HOME for notation: holds notation/{signingkeys.json,localkeys,truststore}. */
  configDir: string;
  /** Name of the generated test key/cert (CN and truststore name). */
  keyName: string;
  /** Path of the generated self-signed certificate (PEM). */
  certPath: string;
  /** Path of the generated private key (PEM). */
  keyPath: string;
}

/**
 * Creates an isolated notation config dir with a default self-signed test key
 * (`notation cert generate-test --default`, RSA-2048, valid 24 h) which notation also adds
 * to its truststore `ca/<keyName>`.
 */
export async function notationInit(
  opts: { configDir?: string; keyName?: string } = {},
): Promise<NotationConfig> {
  const configDir = opts.configDir ?? mkdtempSync(path.join(os.tmpdir(), "tollgate-notation-"));
  const keyName = opts.keyName ?? "tollgate-test";
  await cli(tools.notation, ["cert", "generate-test", "--default", keyName], notationEnv(configDir));
  const dir = path.join(configDir, "notation", "localkeys");
  return {
    configDir,
    keyName,
    certPath: path.join(dir, `${keyName}.crt`),
    keyPath: path.join(dir, `${keyName}.key`),
  };
}

export function notationEnv(configDir: string): NodeJS.ProcessEnv {
  return { ...baseEnv(configDir), XDG_CONFIG_HOME: configDir };
}

export interface NotationSignOptions {
  /** REPO@DIGEST (a tag works too, but notation resolves and warns). */
  ref: string;
  /** Config dir from notationInit (its default key signs). */
  configDir: string;
  format?: "jws" | "cose";
  /** `-m k=v` user metadata, lands in the payload's targetArtifact.annotations. */
  metadata?: Record<string, string>;
  /** Sign with a named key instead of the default. */
  key?: string;
  /** Seconds until the signature expires (`--expiry`). */
  expiry?: string;
}

/** Signature manifest digests notation lists for `ref` (`notation ls`). */
export async function notationList(ref: string, configDir: string): Promise<string[]> {
  const { stdout } = await cli(tools.notation, ["ls", "--insecure-registry", ref], notationEnv(configDir));
  return [...stdout.matchAll(/(sha256:[0-9a-f]{64})/g)]
    .map((m) => m[1] as string)
    .filter((d) => !ref.endsWith(d));
}

/**
 * `notation sign --insecure-registry` → digest of the new signature manifest (notation
 * prints no digest, so it is found by diffing `notation ls` before and after).
 */
export async function notationSign(o: NotationSignOptions): Promise<string> {
  const before = new Set(await notationList(o.ref, o.configDir));
  const args = ["sign", "--insecure-registry", "--signature-format", o.format ?? "jws"];
  for (const [k, v] of Object.entries(o.metadata ?? {})) args.push("-m", `${k}=${v}`);
  if (o.key) args.push("--key", o.key);
  if (o.expiry) args.push("--expiry", o.expiry);
  args.push(o.ref);
  await cli(tools.notation, args, notationEnv(o.configDir));
  const added = (await notationList(o.ref, o.configDir)).filter((d) => !before.has(d));
  if (added.length !== 1 || !added[0])
    throw new Error(`notation sign: expected one new signature, saw ${added.length}`);
  return added[0];
}

/** Writes `trustpolicy.json` (notation/trustpolicy.json is what notation 1.3.2 reads). */
export function notationWriteTrustPolicy(configDir: string, policy: unknown): string {
  const p = path.join(configDir, "notation", "trustpolicy.json");
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, JSON.stringify(policy, null, 2));
  return p;
}

/** `notation verify --insecure-registry REF`; resolves with output, rejects when verification fails. */
export async function notationVerify(ref: string, configDir: string): Promise<CliResult> {
  return cli(tools.notation, ["verify", "--insecure-registry", ref], notationEnv(configDir));
}

// ---------------------------------------------------------------------------------------
// cosign

export const COSIGN_TEST_PASSWORD = "tollgate-test-password";

export interface CosignKeys {
  dir: string;
  /** Encrypted private key "cosign.key" (ENCRYPTED SIGSTORE PRIVATE KEY PEM). */
  privateKey: string;
  /** "cosign.pub" (PEM SPKI, ECDSA P-256). */
  publicKey: string;
  /** The PEM text of the public key. */
  publicKeyPem: string;
  password: string;
}

function cosignEnv(home: string, password: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...baseEnv(home), COSIGN_PASSWORD: password, DOCKER_CONFIG: path.join(home, ".docker"), ...extra };
}

/** `cosign generate-key-pair` in `dir` (created when absent). */
export async function cosignGenerateKeyPair(
  dir?: string,
  password = COSIGN_TEST_PASSWORD,
): Promise<CosignKeys> {
  const d = dir ?? mkdtempSync(path.join(os.tmpdir(), "tollgate-cosign-"));
  mkdirSync(d, { recursive: true });
  await cli(tools.cosign, ["generate-key-pair"], cosignEnv(d, password), d);
  const publicKey = path.join(d, "cosign.pub");
  return {
    dir: d,
    privateKey: path.join(d, "cosign.key"),
    publicKey,
    publicKeyPem: readFileSync(publicKey, "utf8"),
    password,
  };
}

export interface CosignSignOptions {
  /** REPO@DIGEST. */
  ref: string;
  /** Dir holding cosign.key (from cosignGenerateKeyPair), or the keys object. */
  keyDir: string | CosignKeys;
  /**
   * "bundle" (default, cosign 3 bundle v0.3 in the referrers tag index),
   * "legacy" (`--new-bundle-format=false`: `sha256-<hex>.sig` tag, simplesigning layer),
   * "legacy-referrers" (simplesigning via OCI 1.1 referrers, config artifact.sig).
   */
  format?: "bundle" | "legacy" | "legacy-referrers";
  /** Shorthand for format "legacy" when true. */
  legacy?: boolean;
  /** `-a k=v` annotations (legacy: the simplesigning `optional` map). */
  annotations?: Record<string, string>;
  password?: string;
}

/** Offline `cosign sign` (no Fulcio, no Rekor) against a plain-HTTP loopback registry. */
export async function cosignSign(o: CosignSignOptions): Promise<CliResult> {
  const keyDir = typeof o.keyDir === "string" ? o.keyDir : o.keyDir.dir;
  const password = o.password ?? (typeof o.keyDir === "string" ? COSIGN_TEST_PASSWORD : o.keyDir.password);
  const format = o.format ?? (o.legacy ? "legacy" : "bundle");
  const args = [
    "sign",
    "--key",
    path.join(keyDir, "cosign.key"),
    "--use-signing-config=false",
    "--tlog-upload=false",
    "--allow-http-registry",
    "-y",
  ];
  const extraEnv: NodeJS.ProcessEnv = {};
  if (format === "legacy") args.push("--new-bundle-format=false");
  if (format === "legacy-referrers") {
    args.push("--new-bundle-format=false", "--registry-referrers-mode=oci-1-1");
    extraEnv.COSIGN_EXPERIMENTAL = "1";
  }
  for (const [k, v] of Object.entries(o.annotations ?? {})) args.push("-a", `${k}=${v}`);
  args.push(o.ref);
  return cli(tools.cosign, args, cosignEnv(keyDir, password, extraEnv), keyDir);
}

/** Offline `cosign verify --key`; rejects when verification fails. */
export async function cosignVerify(ref: string, keys: CosignKeys): Promise<CliResult> {
  return cli(
    tools.cosign,
    ["verify", "--key", keys.publicKey, "--insecure-ignore-tlog=true", "--allow-http-registry", ref],
    cosignEnv(keys.dir, keys.password),
    keys.dir,
  );
}

// ---------------------------------------------------------------------------------------
// oras

/**
 * `oras attach --plain-http` a small non-signature artifact (e.g. an SBOM) to `ref`.
 * Returns the attached manifest's digest.
 */
export async function orasAttach(o: {
  ref: string;
  artifactType: string;
  content?: string;
  fileName?: string;
  annotations?: Record<string, string>;
}): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-oras-"));
  const file = o.fileName ?? "artifact.txt";
  writeFileSync(path.join(dir, file), o.content ?? "attached by oras\n");
  const args = ["attach", "--plain-http", "--artifact-type", o.artifactType];
  for (const [k, v] of Object.entries(o.annotations ?? {})) args.push("--annotation", `${k}=${v}`);
  args.push(o.ref, file);
  const { stdout } = await cli(
    tools.oras,
    args,
    { ...baseEnv(dir), DOCKER_CONFIG: path.join(dir, ".docker") },
    dir,
  );
  rmSync(dir, { recursive: true, force: true });
  const m = /Digest:\s*(sha256:[0-9a-f]{64})/.exec(stdout);
  if (!m?.[1]) throw new Error(`oras attach printed no digest: ${stdout}`);
  return m[1];
}

/**
 * Offline `cosign attest --type <type> --predicate <file>`: "bundle" (default; a sigstore
 * bundle referrer) or "legacy" (`--new-bundle-format=false`: a layer of `sha256-<hex>.att`).
 */
export async function cosignAttest(o: {
  ref: string;
  keyDir: CosignKeys;
  type: string;
  predicate: unknown;
  format?: "bundle" | "legacy";
}): Promise<CliResult> {
  const file = path.join(o.keyDir.dir, `predicate-${process.hrtime.bigint()}.json`);
  writeFileSync(file, JSON.stringify(o.predicate));
  const args = [
    "attest",
    "--key",
    o.keyDir.privateKey,
    "--use-signing-config=false",
    "--tlog-upload=false",
    "--allow-http-registry",
    "-y",
    "--type",
    o.type,
    "--predicate",
    file,
  ];
  if (o.format === "legacy") args.push("--new-bundle-format=false");
  args.push(o.ref);
  try {
    return await cli(tools.cosign, args, cosignEnv(o.keyDir.dir, o.keyDir.password), o.keyDir.dir);
  } finally {
    rmSync(file, { force: true });
  }
}
