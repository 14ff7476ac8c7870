// `tollgate policy import notation --dir DIR`: turns a notation configuration directory
// (trustpolicy.oci.json or trustpolicy.json + truststore/x509/<type>/<name>/*) into one
// ImagePolicy whose notation verifier carries the trust policy document verbatim, plus a
// ConfigMap with the document and the trust stores it names (or everything inline).
// The stores are read the way notation reads them, so the policy decides as `notation verify`.
import { errorMessage } from "../base/errors.js";
import { X509Certificate } from "node:crypto";
import { lstatSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { parseTrustPolicyDocument } from "../engine/notation/policy.js";
import { API_VERSION, KIND } from "../engine/policy/model.js";
import { parseCertificateBundle } from "../engine/policy/pem.js";
import { type CommandSpec, EXIT, type Parsed, str, UsageError } from "./args.js";

export const importNotationSpec: CommandSpec = {
  name: "tollgate policy import notation",
  usage: "tollgate policy import notation --dir DIR [--name NAME] [--namespace NS] [--inline]",
  summary:
    "Writes (to stdout, YAML) an ImagePolicy whose notation verifier uses the trust policy\n" +
    "document of a notation configuration directory verbatim, and a ConfigMap holding that\n" +
    "document and the certificates of every trust store it names. A report goes to stderr.",
  positionals: { min: 0, max: 0, name: "" },
  flags: [
    {
      name: "dir",
      type: "string",
      value: "DIR",
      help: "notation configuration directory (e.g. ~/.config/notation)",
    },
    { name: "name", type: "string", value: "NAME", help: 'ImagePolicy name (default "notation")' },
    {
      name: "namespace",
      type: "string",
      value: "NS",
      help: 'namespace of the ConfigMap with the trust material (default "tollgate-system")',
    },
    {
      name: "inline",
      type: "boolean",
      help: "put the document and certificates into the ImagePolicy itself",
    },
  ],
  details: `Exit codes:
  0  written
  1  the directory's trust policy or a trust store it names is invalid (notation would refuse it too)
  2  usage error, or the directory cannot be read`,
};

const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const TYPES = ["ca", "signingAuthority", "tsa"] as const;
const MAX_FILE = 1 << 20;

export class ImportProblem extends Error {
  override name = "ImportProblem";
}

export interface NotationImport {
  /** The documents to write: ConfigMap (unless inline) then ImagePolicy. */
  docs: Record<string, unknown>[];
  /** What the user should know (stores named but absent, files read). */
  notes: string[];
}

/** Reads one certificate file as notation does: PEM (one or more blocks) or a single DER. */
function readCertFile(file: string): string[] {
  const st = lstatSync(file);
  if (st.isSymbolicLink() || !st.isFile())
    throw new ImportProblem(
      `${file}: not a regular file (notation refuses directories and symlinks in a trust store)`,
    );
  if (st.size > MAX_FILE) throw new ImportProblem(`${file}: larger than 1 MiB`);
  const buf = readFileSync(file);
  const text = buf.toString("latin1");
  if (text.includes("-----BEGIN")) {
    const r = parseCertificateBundle(text.replace(/\r\n/g, "\n"));
    if ("error" in r) throw new ImportProblem(`${file}: ${r.error}`);
    return r.certs.map((c) => new X509Certificate(c).toString());
  }
  try {
    return [new X509Certificate(buf).toString()];
  } catch (e) {
    throw new ImportProblem(`${file}: neither PEM nor DER X.509 (${errorMessage(e)})`);
  }
}

function readDocument(dir: string): { file: string; doc: unknown } {
  for (const f of ["trustpolicy.oci.json", "trustpolicy.json"]) {
    const file = path.join(dir, f);
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(file);
    } catch {
      continue;
    }
    if (!st.isFile()) throw new ImportProblem(`${file}: not a regular file (notation refuses symlinks)`);
    if (st.size > MAX_FILE) throw new ImportProblem(`${file}: larger than 1 MiB`);
    try {
      return { file, doc: JSON.parse(readFileSync(file, "utf8")) as unknown };
    } catch (e) {
      throw new ImportProblem(`${file}: malformed trust policy (${errorMessage(e)})`);
    }
  }
  throw new UsageError(`${dir} holds neither trustpolicy.oci.json nor trustpolicy.json`);
}

export function importNotationDir(
  dir: string,
  opts: { name?: string; namespace?: string; inline?: boolean } = {},
): NotationImport {
  const name = opts.name ?? "notation";
  const namespace = opts.namespace ?? "tollgate-system";
  if (!NAME_RE.test(name))
    throw new UsageError(`--name ${JSON.stringify(name)} must be a lower-case DNS-style name`);
  if (!NAME_RE.test(namespace))
    throw new UsageError(`--namespace ${JSON.stringify(namespace)} is not a valid namespace`);
  const { file, doc } = readDocument(dir);
  let policies: ReturnType<typeof parseTrustPolicyDocument>;
  try {
    policies = parseTrustPolicyDocument(doc);
  } catch (e) {
    throw new ImportProblem(`${file}: ${errorMessage(e)}`);
  }
  const notes = [`trust policy document: ${file} (${policies.length} trust policies)`];
  // Only the stores the document names: notation never reads the others.
  const named = new Set<string>();
  for (const p of policies) for (const s of p.trustStores) named.add(s);
  const stores: { type: string; name: string; pem: string; key: string }[] = [];
  for (const ref of [...named].sort()) {
    const i = ref.indexOf(":");
    const type = ref.slice(0, i) as (typeof TYPES)[number];
    const storeName = ref.slice(i + 1);
    const storeDir = path.join(dir, "truststore", "x509", type, storeName);
    let st: ReturnType<typeof lstatSync> | undefined;
    try {
      st = lstatSync(storeDir);
    } catch {
      st = undefined;
    }
    if (!st) {
      notes.push(
        `trust store ${ref} is named by the document but ${storeDir} does not exist: like notation, the verifier treats it as a failed load (the level decides)`,
      );
      continue;
    }
    if (!st.isDirectory())
      throw new ImportProblem(`${storeDir}: not a regular directory (notation refuses it)`);
    const certs: string[] = [];
    for (const f of readdirSync(storeDir).sort()) certs.push(...readCertFile(path.join(storeDir, f)));
    if (certs.length === 0) {
      notes.push(`trust store ${ref} holds no certificates: like notation, it fails to load`);
      continue;
    }
    notes.push(`trust store ${ref}: ${certs.length} certificate(s)`);
    stores.push({ type, name: storeName, pem: certs.join(""), key: `${type}.${storeName}.pem` });
  }

  const cmName = `${name}-notation`;
  const ref = (key: string) => ({ configMapRef: { name: cmName, namespace, key } });
  const docText = `${JSON.stringify(doc, null, 2)}\n`;
  const policy = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name },
    spec: {
      verifiers: [
        {
          name: "notation",
          notation: {
            trustPolicy: opts.inline ? docText : ref("trustpolicy.json"),
            trustStores: stores.map((s) => ({
              type: s.type,
              name: s.name,
              ...(opts.inline ? { certificates: s.pem } : ref(s.key)),
            })),
          },
        },
      ],
    },
  };
  const docs: Record<string, unknown>[] = [];
  if (!opts.inline)
    docs.push({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: cmName, namespace },
      data: Object.fromEntries([["trustpolicy.json", docText], ...stores.map((s) => [s.key, s.pem])]),
    });
  docs.push(policy);
  return { docs, notes };
}

export async function importNotation(
  p: Parsed,
  io: { out: (s: string) => void; err: (s: string) => void },
): Promise<number> {
  const dir = str(p, "dir");
  if (!dir) throw new UsageError("--dir is required");
  try {
    lstatSync(dir);
  } catch {
    throw new UsageError(`${dir} cannot be read`);
  }
  let result: NotationImport;
  try {
    const name = str(p, "name");
    const namespace = str(p, "namespace");
    result = importNotationDir(dir, {
      ...(name !== undefined ? { name } : {}),
      ...(namespace !== undefined ? { namespace } : {}),
      inline: p.flags.get("inline") === true,
    });
  } catch (e) {
    if (e instanceof ImportProblem) {
      io.err(`tollgate policy import notation: ${e.message}\n`);
      return EXIT.FAIL;
    }
    throw e;
  }
  io.out(result.docs.map((d) => stringify(d, { lineWidth: 0 })).join("---\n"));
  for (const n of result.notes) io.err(`note: ${n}\n`);
  return EXIT.OK;
}
