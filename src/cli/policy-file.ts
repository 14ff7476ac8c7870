// Reads policy files the way the file policy source does: YAML or JSON, one or more
// documents per file — ImagePolicy documents plus the Namespace / Secret / ConfigMap
// objects they go with. Used by `tollgate verify --policy` and `tollgate policy validate`.
// `-` reads standard input; a `kind: List` (or `<Kind>List`) document — what
// `kubectl get … -o yaml` prints — stands for its items.
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { errorMessage } from "../base/errors.js";
import { parseAllDocuments } from "yaml";
import type { TrustMaterialRef, TrustMaterialResolver } from "../engine/policy/model.js";
import { isRecord } from "../base/record.js";
import { trustObjectData } from "../policy-source/objects.js";
import { UsageError } from "./args.js";

/** Larger than any sane policy file; keeps a wrong path (a disk image, /dev/zero) harmless. */
export const MAX_POLICY_FILE_BYTES = 8 << 20;
export const MAX_DOCS_PER_FILE = 1000;

export interface FileDoc {
  file: string;
  /** 0-based position of the document in the file. */
  index: number;
  /** 1-based line where the document starts. */
  line: number;
  kind?: string;
  name?: string;
  namespace?: string;
  /** 0-based position among the items of a List document. */
  item?: number;
  value: unknown;
  /** YAML syntax problem; `value` is undefined then. */
  syntaxError?: string;
}

/** Reads one file. Throws UsageError when it cannot be read (missing, a directory, too large). */
export function readDocs(file: string): FileDoc[] {
  let text: string;
  if (file === "-") {
    text = readStdin();
    file = STDIN_LABEL;
  } else
    try {
      text = readFile(file);
    } catch (e) {
      if (e instanceof UsageError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      throw new UsageError(
        code === "ENOENT" ? `${file}: no such file` : `cannot read ${file}: ${errorMessage(e)}`,
      );
    }
  return parseDocs(file, text);
}

/** How standard input is named in messages. */
export const STDIN_LABEL = "(stdin)";

function readStdin(): string {
  let buf: Buffer;
  try {
    buf = readFileSync(0);
  } catch (e) {
    throw new UsageError(`cannot read standard input: ${errorMessage(e)}`);
  }
  if (buf.length > MAX_POLICY_FILE_BYTES)
    throw new UsageError(`standard input is larger than ${MAX_POLICY_FILE_BYTES} bytes`);
  return buf.toString("utf8");
}

/**
 * The files FILE arguments stand for: a directory is its *.yaml, *.yml and *.json files
 * (not recursive, hidden files left out, like the file policy source); anything else there
 * is skipped with a note. `-` (standard input) may appear once.
 */
export function expandPaths(args: readonly string[]): { files: string[]; notes: string[] } {
  const files: string[] = [];
  const notes: string[] = [];
  if (args.filter((a) => a === "-").length > 1)
    throw new UsageError("- (standard input) given more than once");
  for (const a of args) {
    if (a === "-") {
      files.push(a);
      continue;
    }
    let dir = false;
    try {
      dir = statSync(a).isDirectory();
    } catch {
      // readDocs reports a missing or unreadable file
    }
    if (!dir) {
      files.push(a);
      continue;
    }
    let names: string[];
    try {
      names = readdirSync(a).sort();
    } catch (e) {
      throw new UsageError(`cannot read directory ${a}: ${errorMessage(e)}`);
    }
    let found = 0;
    for (const n of names) {
      const f = path.join(a, n);
      if (n.startsWith(".")) continue;
      let isFile = false;
      try {
        isFile = statSync(f).isFile();
      } catch {
        isFile = false;
      }
      if (isFile && /\.(ya?ml|json)$/i.test(n)) {
        files.push(f);
        found++;
      } else notes.push(`${f}: skipped (${isFile ? "not a YAML or JSON file" : "not a regular file"})`);
    }
    if (found === 0) notes.push(`${a}: no YAML or JSON files`);
  }
  return { files, notes };
}

/** Throws UsageError for a directory or an oversized file, fs errors otherwise. */
function readFile(file: string): string {
  const st = statSync(file);
  if (st.isDirectory()) throw new UsageError(`${file} is a directory, not a policy file`);
  if (st.size > MAX_POLICY_FILE_BYTES)
    throw new UsageError(`${file} is larger than ${MAX_POLICY_FILE_BYTES} bytes`);
  return readFileSync(file, "utf8");
}

function parseDocs(file: string, text: string): FileDoc[] {
  const lineOf = (offset: number) => text.slice(0, offset).split("\n").length;
  const parsed = parseAllDocuments(text, { prettyErrors: false });
  // An empty stream (no documents at all) is an empty array-like.
  const docs = Array.isArray(parsed) ? parsed : [];
  if (docs.length > MAX_DOCS_PER_FILE)
    throw new UsageError(`${file} holds ${docs.length} documents, more than ${MAX_DOCS_PER_FILE}`);
  const out: FileDoc[] = [];
  docs.forEach((d, index) => {
    const start = d.range?.[0] ?? 0;
    const base: FileDoc = { file, index, line: lineOf(start), value: undefined };
    if (d.errors.length > 0) {
      const e = d.errors[0]!;
      const pos = e.pos?.[0];
      const at =
        pos === undefined ? "" : ` (line ${lineOf(pos)}, column ${pos - text.lastIndexOf("\n", pos - 1)})`;
      out.push({ ...base, syntaxError: `${e.message.split("\n")[0]}${at}` });
      return;
    }
    let value: unknown;
    try {
      value = d.toJS({ maxAliasCount: 100 });
    } catch (e) {
      out.push({ ...base, syntaxError: errorMessage(e).split("\n")[0] });
      return;
    }
    // `---` followed by nothing (or only comments) is not a document.
    if (value === null || value === undefined) return;
    if (isList(value)) {
      if (value.items.length > MAX_DOCS_PER_FILE)
        throw new UsageError(
          `${file}: a List of ${value.items.length} items, more than ${MAX_DOCS_PER_FILE}`,
        );
      value.items.forEach((item, i) => {
        out.push(describeDoc({ ...base, item: i }, item));
      });
      return;
    }
    out.push(describeDoc(base, value));
  });
  return out;
}

/** `kind: List` (kubectl) or `<Kind>List` (the API server's list), with an items array. */
function isList(v: unknown): v is { kind: string; items: unknown[] } {
  return isRecord(v) && typeof v.kind === "string" && /List$/.test(v.kind) && Array.isArray(v.items);
}

function describeDoc(base: FileDoc, value: unknown): FileDoc {
  const meta = isRecord(value) && isRecord(value.metadata) ? value.metadata : undefined;
  return {
    ...base,
    value,
    kind: isRecord(value) && typeof value.kind === "string" ? value.kind : undefined,
    name: meta && typeof meta.name === "string" ? meta.name : undefined,
    namespace: meta && typeof meta.namespace === "string" ? meta.namespace : undefined,
  };
}

export function docLabel(d: FileDoc): string {
  const what = d.kind ? `${d.kind}${d.name ? ` ${d.name}` : ""}` : `document ${d.index + 1}`;
  const item = d.item !== undefined ? ` List item ${d.item + 1}:` : "";
  return `${d.file}:${d.line} (${item ? `${item.trim()} ` : ""}${what})`;
}

/**
 * Trust material from the Secret and ConfigMap documents among `docs`, served to the policy
 * compiler. A reference to an object that is not there fails (the compiler reports it with
 * the reference's path): a missing reference never means "no trust material".
 */
export function fileTrustResolver(docs: FileDoc[]): {
  resolver: TrustMaterialResolver;
  has(ref: Omit<TrustMaterialRef, "key">): boolean;
  problems: string[];
} {
  const objects = new Map<string, Map<string, Uint8Array>>();
  const problems: string[] = [];
  for (const d of docs) {
    if ((d.kind !== "Secret" && d.kind !== "ConfigMap") || !isRecord(d.value)) continue;
    if (!d.name || !d.namespace) {
      problems.push(`${docLabel(d)}: metadata.name and metadata.namespace are required`);
      continue;
    }
    try {
      objects.set(`${d.kind}/${d.namespace}/${d.name}`, trustObjectData(d.kind, d.value));
    } catch (e) {
      problems.push(`${docLabel(d)}: ${errorMessage(e)}`);
    }
  }
  return {
    problems,
    has: (ref) => objects.has(`${ref.kind}/${ref.namespace}/${ref.name}`),
    resolver: {
      async resolve(ref) {
        const obj = objects.get(`${ref.kind}/${ref.namespace}/${ref.name}`);
        if (!obj) throw new Error(`${ref.kind} ${ref.namespace}/${ref.name} is not in the given files`);
        const v = obj.get(ref.key);
        if (!v) throw new Error(`${ref.kind} ${ref.namespace}/${ref.name} has no key "${ref.key}"`);
        return v;
      },
    },
  };
}

/** Every secretRef / configMapRef in a raw ImagePolicy document (for "can it be compiled here?"). */
export function referencedObjects(doc: unknown): Array<Omit<TrustMaterialRef, "key">> {
  const out: Array<Omit<TrustMaterialRef, "key">> = [];
  const walk = (v: unknown, depth: number) => {
    if (depth > 32) return;
    if (Array.isArray(v)) for (const x of v) walk(x, depth + 1);
    else if (isRecord(v)) {
      for (const [k, x] of Object.entries(v)) {
        if ((k === "secretRef" || k === "configMapRef") && isRecord(x)) {
          if (typeof x.name === "string" && typeof x.namespace === "string")
            out.push({
              kind: k === "secretRef" ? "Secret" : "ConfigMap",
              name: x.name,
              namespace: x.namespace,
            });
        } else walk(x, depth + 1);
      }
    }
  };
  walk(doc, 0);
  return out;
}
