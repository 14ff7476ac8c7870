// Test harness for notation verdict agreement: the real notation CLI (sign/verify) with
// isolated config dirs, oras to attach hand-made envelopes, a minimal referrers-tag reader
// that builds the engine's ArtifactSource, and a JWS signer for crafted envelopes.
import { execFile } from "node:child_process";
import { constants, createHash, createPrivateKey, sign as cryptoSign } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import type {
  ArtifactSource,
  Descriptor,
  DiscoveredArtifact,
  OciManifest,
} from "../../../src/engine/types.js";
import { tools } from "../../support/tools.js";
import { chainDer, type KeyCert } from "./pki.js";

const run = promisify(execFile);

const ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

export function notationEnv(configHome: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: configHome, XDG_CONFIG_HOME: configHome };
}

/** A notation config home whose default signing key is `key` (signingkeys.json with keyPath/certPath). */
export function signerHome(dir: string, key: KeyCert): string {
  const home = path.join(dir, `signer-${key.name}`);
  mkdirSync(path.join(home, "notation"), { recursive: true });
  writeFileSync(
    path.join(home, "notation", "signingkeys.json"),
    JSON.stringify({
      default: key.name,
      keys: [{ name: key.name, keyPath: key.keyPath, certPath: key.chainPath }],
    }),
  );
  return home;
}

export async function notationSign(
  home: string,
  ref: string,
  opts: { format?: "jws" | "cose"; timestampUrl?: string; timestampRoot?: string } = {},
): Promise<void> {
  const args = ["sign", "--insecure-registry", "--signature-format", opts.format ?? "jws"];
  if (opts.timestampUrl)
    args.push("--timestamp-url", opts.timestampUrl, "--timestamp-root-cert", opts.timestampRoot!);
  args.push(ref);
  try {
    await run(tools.notation, args, { env: notationEnv(home), timeout: 120_000 });
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`notation ${args.join(" ")} failed: ${err.stderr ?? err.message}`);
  }
}

export interface PolicyHome {
  home: string;
  /** <home>/notation: what loadNotationConfigDir reads. */
  configDir: string;
}

/** A notation config home with trustpolicy.json and truststore/x509/<type>/<name>/*.pem. */
export function policyHome(
  dir: string,
  name: string,
  policy: Record<string, unknown>,
  stores: { type: "ca" | "signingAuthority" | "tsa"; name: string; certs: KeyCert[] }[],
): PolicyHome {
  const home = path.join(dir, `policy-${name}`);
  const configDir = path.join(home, "notation");
  mkdirSync(configDir, { recursive: true });
  writeFileSync(
    path.join(configDir, "trustpolicy.json"),
    JSON.stringify({ version: "1.0", trustPolicies: [policy] }),
  );
  for (const s of stores) {
    const d = path.join(configDir, "truststore", "x509", s.type, s.name);
    mkdirSync(d, { recursive: true });
    s.certs.forEach((c, i) => {
      writeFileSync(path.join(d, `${i}-${c.name}.pem`), c.certPem);
    });
  }
  return { home, configDir };
}

export async function notationVerify(home: string, ref: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await run(tools.notation, ["verify", "--insecure-registry", ref], {
      env: notationEnv(home),
      timeout: 120_000,
    });
    return { ok: true, output: `${stdout}${stderr}`.trim() };
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string; code?: number };
    if (typeof err.code !== "number") throw e;
    return { ok: false, output: `${err.stdout ?? ""}${err.stderr ?? ""}`.trim() };
  }
}

/** Attaches an envelope as a Notary Project signature with the real oras CLI. */
export async function attachEnvelope(
  dir: string,
  ref: string,
  envelope: Uint8Array,
  mediaType: string,
  chain: Buffer[],
): Promise<void> {
  const d = path.join(dir, `attach-${createHash("sha256").update(envelope).digest("hex").slice(0, 12)}`);
  mkdirSync(d, { recursive: true });
  writeFileSync(path.join(d, "sig"), envelope);
  const thumbs = JSON.stringify(chain.map((c) => createHash("sha256").update(c).digest("hex")));
  await run(
    tools.oras,
    ["attach", "--plain-http", "--artifact-type", "application/vnd.cncf.notary.signature"]
      .concat(["--annotation", `io.cncf.notary.x509chain.thumbprint#S256=${thumbs}`])
      .concat([ref, `sig:${mediaType}`]),
    { cwd: d, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: d }, timeout: 120_000 },
  );
}

// --- minimal registry reading (referrers tag schema; docker-registry has no Referrers API) ---

async function get(url: string): Promise<{ body: Uint8Array; type: string }> {
  const res = await fetch(url, { headers: { accept: ACCEPT } });
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return { body: new Uint8Array(await res.arrayBuffer()), type: res.headers.get("content-type") ?? "" };
}

function sha256(b: Uint8Array): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

export async function subjectDescriptor(
  registryUrl: string,
  repoName: string,
  digest: string,
): Promise<Descriptor> {
  const { body, type } = await get(`${registryUrl}/v2/${repoName}/manifests/${digest}`);
  if (sha256(body) !== digest) throw new Error("subject digest mismatch");
  return { mediaType: type, digest, size: body.length };
}

/** ArtifactSource for `repoName@digest`, from the `sha256-<hex>` referrers tag index. */
export async function artifactSource(
  registryUrl: string,
  host: string,
  repoName: string,
  digest: string,
): Promise<ArtifactSource> {
  const descriptor = await subjectDescriptor(registryUrl, repoName, digest);
  const artifacts: DiscoveredArtifact[] = [];
  const res = await fetch(`${registryUrl}/v2/${repoName}/manifests/${digest.replace(":", "-")}`, {
    headers: { accept: ACCEPT },
  });
  if (res.status === 200) {
    const index = JSON.parse(await res.text()) as { manifests?: Descriptor[] };
    for (const d of index.manifests ?? []) {
      const { body } = await get(`${registryUrl}/v2/${repoName}/manifests/${d.digest}`);
      if (sha256(body) !== d.digest) throw new Error("artifact digest mismatch");
      const manifest = JSON.parse(Buffer.from(body).toString("utf8")) as OciManifest;
      artifacts.push({
        digest: d.digest,
        artifactType: manifest.artifactType ?? manifest.config.mediaType,
        manifest,
        source: "referrers-tag",
      });
    }
  } else await res.body?.cancel();
  return {
    subject: { reference: `${host}/${repoName}@${digest}`, digest, descriptor },
    artifacts,
    async fetchBlob(desc: Descriptor) {
      const { body } = await get(`${registryUrl}/v2/${repoName}/blobs/${desc.digest}`);
      if (sha256(body) !== desc.digest || body.length !== desc.size) throw new Error("blob digest mismatch");
      return body;
    },
  };
}

// --- crafted envelopes ---------------------------------------------------------------

export interface CraftOptions {
  key: KeyCert;
  target: Descriptor;
  signingTime?: Date;
  /** Extra protected headers; `critical` lists which of them go into crit. */
  extra?: Record<string, unknown>;
  critical?: string[];
}

/** A Notary Project JWS (same shape notation writes), signed with PS256 by `key`. */
export function craftJws(o: CraftOptions): Uint8Array {
  const b64 = (b: Buffer | string) => Buffer.from(b).toString("base64url");
  const header = {
    alg: "PS256",
    crit: ["io.cncf.notary.signingScheme", ...(o.critical ?? [])],
    cty: "application/vnd.cncf.notary.payload.v1+json",
    "io.cncf.notary.signingScheme": "notary.x509",
    "io.cncf.notary.signingTime": (o.signingTime ?? new Date()).toISOString().replace(/\.\d+Z$/, "Z"),
    ...(o.extra ?? {}),
  };
  const protectedB64 = b64(JSON.stringify(header));
  const payloadB64 = b64(JSON.stringify({ targetArtifact: o.target }));
  const key = createPrivateKey(readFileSync(o.key.keyPath));
  const sig = cryptoSign("sha256", Buffer.from(`${protectedB64}.${payloadB64}`), {
    key,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: 32,
  });
  const env = {
    payload: payloadB64,
    protected: protectedB64,
    header: {
      x5c: chainDer(o.key.chainPath).map((c) => c.toString("base64")),
      "io.cncf.notary.signingAgent": "tollgate-test",
    },
    signature: b64(sig),
  };
  return new Uint8Array(Buffer.from(JSON.stringify(env)));
}
