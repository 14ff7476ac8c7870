// The documents of one policy file (YAML or JSON, one or more documents): ImagePolicy,
// Namespace, ConfigMap and Secret objects, shape-checked, trust material hashed. A problem
// anywhere rejects the whole file with a sentence naming the document.
import { createHash } from "node:crypto";
import { parseAllDocuments } from "yaml";
import { errorMessage } from "../base/errors.js";
import { isRecord } from "../base/record.js";
import { stringMap, trustObjectData } from "./objects.js";

export type FileObject =
  | { kind: "ImagePolicy"; name: string; doc: Record<string, unknown> }
  | { kind: "Namespace"; name: string; annotations: Record<string, string> }
  | {
      kind: "Secret" | "ConfigMap";
      namespace: string;
      name: string;
      data: Map<string, Uint8Array>;
      hash: string;
    };

/** Parses one file into objects; throws a sentence naming the document on any problem. */
export function parseFile(text: string, maxDocs: number): FileObject[] {
  const docs = parseAllDocuments(text, { prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [];
  if (list.length > maxDocs) throw new Error(`more than ${maxDocs} documents`);
  const out: FileObject[] = [];
  list.forEach((d, i) => {
    const where = `document ${i + 1}`;
    if (d.errors.length > 0) throw new Error(`${where}: YAML: ${d.errors[0]?.message ?? "syntax error"}`);
    const v: unknown = d.toJS({ maxAliasCount: 100 });
    if (v === null || v === undefined) return;
    try {
      out.push(parseObject(v));
    } catch (e) {
      throw new Error(`${where}: ${errorMessage(e)}`);
    }
  });
  return out;
}

function parseObject(v: unknown): FileObject {
  if (!isRecord(v)) throw new Error("not a mapping");
  const { apiVersion, kind } = v;
  const meta = v.metadata;
  if (!isRecord(meta) || typeof meta.name !== "string" || meta.name === "")
    throw new Error("metadata.name is required");
  const name = meta.name;
  if (kind === "ImagePolicy") {
    if (apiVersion !== "tollgate.dev/v1alpha1")
      throw new Error(`ImagePolicy ${name}: apiVersion must be tollgate.dev/v1alpha1`);
    return { kind, name, doc: v };
  }
  if (apiVersion !== "v1") throw new Error(`${String(kind)} ${name}: apiVersion must be v1`);
  if (kind === "Namespace")
    return { kind, name, annotations: stringMap(meta.annotations, "metadata.annotations") };
  if (kind === "Secret" || kind === "ConfigMap") {
    const namespace =
      typeof meta.namespace === "string" && meta.namespace !== "" ? meta.namespace : "default";
    let data: Map<string, Uint8Array>;
    try {
      data = trustObjectData(kind, v);
    } catch (e) {
      throw new Error(`${kind} ${namespace}/${name}: ${errorMessage(e)}`);
    }
    const h = createHash("sha256");
    for (const [k, b] of [...data].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      h.update(`${k}\0${b.length}\0`).update(b);
    return { kind, namespace, name, data, hash: h.digest("hex") };
  }
  throw new Error(`unsupported kind ${JSON.stringify(kind)} (ImagePolicy, Namespace, ConfigMap, Secret)`);
}
