// Reads a notation configuration directory (the layout `notation` itself uses under
// $XDG_CONFIG_HOME/notation): trustpolicy.oci.json or trustpolicy.json, and
// truststore/x509/{ca,signingAuthority,tsa}/<name>/*.{pem,crt,cer}.
import { errorMessage } from "../../base/errors.js";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { EngineError } from "../errors.js";
import { validatePolicies } from "./policy.js";
import type { NotationConfig, NotationTrustPolicy, NotationTrustStore, TrustStoreType } from "./types.js";

const MAX_FILE = 1024 * 1024;
const STORE_TYPES: TrustStoreType[] = ["ca", "signingAuthority", "tsa"];

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function readCapped(p: string): Promise<Buffer> {
  const s = await stat(p);
  if (s.size > MAX_FILE) throw new EngineError("INVALID_CONFIG", `${p} is larger than 1 MiB`);
  return readFile(p);
}

function toPem(buf: Buffer): string {
  const text = buf.toString("latin1");
  if (text.includes("-----BEGIN CERTIFICATE-----")) return text;
  // DER file: wrap it so everything downstream handles one format.
  const b64 = buf.toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

export async function loadNotationConfigDir(dir: string): Promise<NotationConfig> {
  const oci = path.join(dir, "trustpolicy.oci.json");
  const legacy = path.join(dir, "trustpolicy.json");
  const file = (await exists(oci)) ? oci : legacy;
  let doc: unknown;
  try {
    doc = JSON.parse((await readCapped(file)).toString("utf8"));
  } catch (e) {
    throw new EngineError("INVALID_CONFIG", `cannot read trust policy ${file}: ${errorMessage(e)}`, {
      cause: e,
    });
  }
  const d = doc as { version?: unknown; trustPolicies?: unknown };
  if (typeof d !== "object" || d === null || d.version !== "1.0" || !Array.isArray(d.trustPolicies))
    throw new EngineError("INVALID_CONFIG", `${file}: expected {"version": "1.0", "trustPolicies": [...]}`);
  const trustPolicies = d.trustPolicies.map((p: Record<string, unknown>) => ({
    name: p.name,
    registryScopes: p.registryScopes,
    signatureVerification: p.signatureVerification,
    trustStores: p.trustStores ?? [],
    trustedIdentities: p.trustedIdentities ?? [],
  })) as NotationTrustPolicy[];
  validatePolicies(trustPolicies);

  const trustStores: NotationTrustStore[] = [];
  for (const type of STORE_TYPES) {
    const typeDir = path.join(dir, "truststore", "x509", type);
    if (!(await exists(typeDir))) continue;
    for (const name of (await readdir(typeDir)).sort()) {
      const storeDir = path.join(typeDir, name);
      if (!(await stat(storeDir)).isDirectory()) continue;
      const certificates: string[] = [];
      for (const f of (await readdir(storeDir)).sort()) {
        if (!/\.(pem|crt|cer)$/i.test(f)) continue;
        const p = path.join(storeDir, f);
        if (!(await stat(p)).isFile()) continue;
        certificates.push(toPem(await readCapped(p)));
      }
      trustStores.push({ type, name, certificates });
    }
  }
  return { trustPolicies, trustStores, revocation: { enabled: true } };
}
