// Test trust material generated at test time: EC public keys with node:crypto and
// self-signed X.509 certificates with the real openssl CLI. Nothing is committed.
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { tools } from "../../support/tools.js";

export function ecKeyPair(): { publicPem: string; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return {
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

export function selfSignedCert(cn: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-cert-"));
  try {
    execFileSync(
      tools.openssl,
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        path.join(dir, "k.pem"),
        "-out",
        path.join(dir, "c.pem"),
        "-days",
        "2",
        "-subj",
        `/CN=${cn}/O=Tollgate Test`,
      ],
      { stdio: "pipe" },
    );
    return readFileSync(path.join(dir, "c.pem"), "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const trustedRootJson = {
  mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
  tlogs: [],
  certificateAuthorities: [],
  ctlogs: [],
  timestampAuthorities: [],
};

/** A TrustMaterialResolver over a map "Kind/ns/name/key" → value, counting calls. */
export function mapResolver(entries: Record<string, string | Uint8Array>) {
  const calls: string[] = [];
  return {
    calls,
    entries,
    async resolve(ref: { kind: string; namespace: string; name: string; key: string }) {
      const k = `${ref.kind}/${ref.namespace}/${ref.name}/${ref.key}`;
      calls.push(k);
      const v = entries[k];
      if (v === undefined) throw new Error(`${ref.kind.toLowerCase()} "${ref.name}" not found`);
      return v;
    },
  };
}
