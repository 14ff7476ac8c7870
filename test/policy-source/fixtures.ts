// Policy documents for policy-source tests: real ImagePolicy documents (compiled by the
// engine's compilePolicy) with freshly generated cosign public keys.
import { generateKeyPairSync } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { stringify } from "yaml";

export function newPublicKeyPem(): string {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return publicKey.export({ type: "spki", format: "pem" }).toString();
}

export interface PolicyDocOpts {
  mode?: "Enforce" | "Audit";
  /** Inline PEM, or a ConfigMap reference. */
  key: string | { configMap: { namespace: string; name: string; key: string } };
  extraSpec?: Record<string, unknown>;
}

export function policyDoc(name: string, o: PolicyDocOpts): Record<string, unknown> {
  const key =
    typeof o.key === "string"
      ? { name: "k", pem: o.key }
      : { name: "k", configMapRef: { ...o.key.configMap } };
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name },
    spec: {
      mode: o.mode ?? "Enforce",
      verifiers: [{ name: "cosign", cosign: { keys: [key] } }],
      ...o.extraSpec,
    },
  };
}

export function namespaceDoc(
  name: string,
  annotations: Record<string, string> = {},
): Record<string, unknown> {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, annotations } };
}

export function configMapDoc(
  namespace: string,
  name: string,
  data: Record<string, string>,
): Record<string, unknown> {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { namespace, name }, data };
}

/** Writes YAML documents atomically (temp dotfile + rename), as ConfigMap volumes and editors do. */
export function writeDocs(dir: string, file: string, docs: unknown[]): void {
  writeRaw(dir, file, docs.map((d) => stringify(d)).join("---\n"));
}

export function writeRaw(dir: string, file: string, text: string): void {
  const tmp = path.join(dir, `.${file}.${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, path.join(dir, file));
}
