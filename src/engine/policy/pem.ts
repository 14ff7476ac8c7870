// PEM parsing for trust material. Every check returns a reason instead of throwing so the
// validator can attach the exact spec path.
import { errorMessage } from "../../base/errors.js";
import { createPublicKey, X509Certificate } from "node:crypto";

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)\r?\n-----END \1-----/g;

export interface PemBlock {
  label: string;
  text: string;
}

export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) out.push({ label: m[1]!, text: `${m[0]}\n` });
  return out;
}

/** Splits a PEM bundle into single certificates; returns a reason when anything is off. */
export function parseCertificateBundle(text: string): { certs: string[] } | { error: string } {
  const blocks = pemBlocks(text);
  if (blocks.length === 0) return { error: "no PEM CERTIFICATE block found" };
  const certs: string[] = [];
  for (const [i, b] of blocks.entries()) {
    if (b.label !== "CERTIFICATE") return { error: `PEM block ${i} is a ${b.label}, expected CERTIFICATE` };
    try {
      new X509Certificate(b.text);
    } catch (e) {
      return { error: `PEM block ${i} is not an X.509 certificate (${errorMessage(e)})` };
    }
    certs.push(b.text);
  }
  return { certs };
}

/** Checks a single PEM public key (SPKI); private keys are refused, not silently derived. */
export function parsePublicKeyPem(text: string): { pem: string; type: string } | { error: string } {
  const blocks = pemBlocks(text);
  if (blocks.length !== 1 || blocks[0]!.label !== "PUBLIC KEY") {
    if (blocks.some((b) => b.label.includes("PRIVATE KEY")))
      return { error: "not a PEM public key (this is a private key: give the public key)" };
    return { error: "not a PEM public key" };
  }
  try {
    const key = createPublicKey({ key: blocks[0]!.text, format: "pem" });
    return { pem: blocks[0]!.text, type: key.asymmetricKeyType ?? "unknown" };
  } catch (e) {
    return { error: `not a PEM public key (${errorMessage(e)})` };
  }
}
