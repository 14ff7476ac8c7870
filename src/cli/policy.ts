// `tollgate policy validate FILE...`: checks ImagePolicy documents with the engine's own
// validator (every problem, with its path) and, when the trust material they reference is
// among the given files, compiles them exactly as the agent would (PEM, trusted roots, Rego).
import { errorMessage } from "../base/errors.js";
import { compileParsed } from "../engine/policy/compile.js";
import { isPolicyValidationError, type PolicyIssue } from "../engine/policy/errors.js";
import { API_VERSION } from "../engine/policy/model.js";
import { usesKeyVault } from "../engine/index.js";
import { validatePolicy } from "../engine/policy/validate.js";
import { isRecord } from "../base/record.js";
import { stringMap, trustObjectData } from "../policy-source/objects.js";
import { distance } from "../base/flags.js";
import { type CommandSpec, EXIT, OUTPUT_FLAG, type Parsed, runCommand, stdio, str } from "./args.js";
import { json } from "./output.js";
import {
  docLabel,
  expandPaths,
  type FileDoc,
  fileTrustResolver,
  readDocs,
  referencedObjects,
  STDIN_LABEL,
} from "./policy-file.js";

export const policyValidateSpec: CommandSpec = {
  name: "tollgate policy validate",
  usage: "tollgate policy validate FILE... [-o table|json]   (FILE: a file, a directory, or - for stdin)",
  summary:
    "Validates ImagePolicy documents (YAML or JSON, several per file; `kind: List` as printed by\n" +
    "`kubectl get -o yaml` counts as its items; `-` reads standard input; a directory means its\n" +
    "*.yaml, *.yml and *.json files). Namespace, Secret and ConfigMap documents — what a policy\n" +
    "directory of the file source holds — are checked for shape; a policy whose referenced\n" +
    "Secrets/ConfigMaps are among the given files is also compiled (keys, certificates, trusted\n" +
    "roots, Rego module), exactly as the agent would. Other Kubernetes objects (a\n" +
    "kustomization.yaml, a Deployment) are skipped with a note.",
  positionals: { min: 1, max: 10_000, name: "FILE" },
  flags: [OUTPUT_FLAG],
  details: `Exit codes:
  0  every policy document is valid (skipped documents do not count)
  1  at least one document is invalid (YAML syntax errors, an object without apiVersion/kind,
     a tollgate.dev kind that is not ImagePolicy, a misspelt ImagePolicy kind)
  2  usage error, or a file cannot be read`,
};

const policyHelp = `Usage: tollgate policy COMMAND

Commands:
  validate FILE...            validate ImagePolicy documents
  import notation --dir DIR   write an ImagePolicy from a notation configuration directory
  import ratify FILE...       write an ImagePolicy from Ratify resources (+ a report)

Run 'tollgate policy validate --help' (or 'import notation|ratify --help') for flags.
`;

type Io = typeof stdio;

export async function policyMain(argv: readonly string[], io: Io = stdio): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    (sub === undefined ? io.err : io.out)(policyHelp);
    return sub === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (sub === "validate") return runCommand(policyValidateSpec, rest, (p) => validate(p, io), io);
  if (sub === "import" && rest[0] === "notation") {
    const { importNotation, importNotationSpec } = await import("./import-notation.js");
    return runCommand(importNotationSpec, rest.slice(1), (p) => importNotation(p, io), io);
  }
  if (sub === "import" && rest[0] === "ratify") {
    const { importRatify, importRatifySpec } = await import("./import-ratify.js");
    return runCommand(importRatifySpec, rest.slice(1), (p) => importRatify(p, io), io);
  }
  if (sub === "import") {
    io.err(
      `tollgate policy import: expected a source ("notation" or "ratify"), got ${JSON.stringify(rest[0] ?? "")}\n`,
    );
    return EXIT.USAGE;
  }
  io.err(`tollgate policy: unknown command "${sub}"\n${policyHelp}`);
  return EXIT.USAGE;
}

export interface DocResult {
  file: string;
  line: number;
  index: number;
  kind?: string;
  name?: string;
  /** 0-based position among the items of a List document. */
  item?: number;
  valid: boolean;
  /** Not a policy document (another Kubernetes kind): not checked, does not fail the run. */
  skipped?: boolean;
  /** true when trust material and Rego were checked too (not only the structure). */
  compiled?: boolean;
  errors: PolicyIssue[];
  notes: string[];
}

async function validate(p: Parsed, io: Io): Promise<number> {
  const all: FileDoc[] = [];
  const empty: string[] = [];
  const { files, notes } = expandPaths(p.positionals);
  for (const f of files) {
    const docs = readDocs(f); // UsageError (exit 2) when unreadable
    if (docs.length === 0) empty.push(f === "-" ? STDIN_LABEL : f);
    all.push(...docs);
  }
  const trust = fileTrustResolver(all);
  const results: DocResult[] = [];
  for (const f of empty)
    results.push({
      file: f,
      line: 1,
      index: 0,
      valid: false,
      errors: [{ path: "(file)", message: "holds no documents" }],
      notes: [],
    });
  for (const d of all) results.push(await check(d, trust));
  const ok = results.every((r) => r.valid);
  if (str(p, "output") === "json") io.out(json({ valid: ok, documents: results, notes }));
  else io.out(render(results, notes));
  return ok ? EXIT.OK : EXIT.FAIL;
}

async function check(d: FileDoc, trust: ReturnType<typeof fileTrustResolver>): Promise<DocResult> {
  const r: DocResult = {
    file: d.file,
    line: d.line,
    index: d.index,
    ...(d.item !== undefined ? { item: d.item } : {}),
    ...(d.kind ? { kind: d.kind } : {}),
    ...(d.name ? { name: d.name } : {}),
    valid: false,
    errors: [],
    notes: [],
  };
  if (d.syntaxError) {
    r.errors.push({ path: "(yaml)", message: d.syntaxError });
    return r;
  }
  const v = d.value;
  if (!isRecord(v)) {
    r.errors.push({ path: "(document)", message: "must be an object" });
    return r;
  }
  switch (d.kind) {
    case "ImagePolicy": {
      const res = validatePolicy(v);
      if (!res.ok) {
        r.errors.push(...res.issues);
        return r;
      }
      const refs = referencedObjects(v.spec);
      const missing = refs.filter((ref) => !trust.has(ref));
      if (usesKeyVault(res.policy.spec)) {
        r.notes.push(
          "structure only: Key Vault material is read by the agent's key management providers (tollgate doctor shows them)",
        );
        r.valid = true;
        return r;
      }
      if (missing.length > 0) {
        const names = [...new Set(missing.map((m) => `${m.kind} ${m.namespace}/${m.name}`))];
        r.notes.push(
          `structure only: ${names.join(", ")} not among the given files, so trust material was not checked`,
        );
        r.valid = true;
        return r;
      }
      try {
        await compileParsed(res.policy, { resolver: trust.resolver });
        r.compiled = true;
        r.valid = true;
      } catch (e) {
        if (isPolicyValidationError(e)) r.errors.push(...e.issues);
        else r.errors.push({ path: "(compile)", message: errorMessage(e) });
      }
      return r;
    }
    case "Namespace": {
      if (v.apiVersion !== "v1") r.errors.push({ path: "apiVersion", message: 'must be "v1"' });
      if (!d.name) r.errors.push({ path: "metadata.name", message: "required" });
      try {
        stringMap(isRecord(v.metadata) ? v.metadata.annotations : undefined, "metadata.annotations");
      } catch (e) {
        r.errors.push({ path: "metadata.annotations", message: errorMessage(e) });
      }
      r.valid = r.errors.length === 0;
      return r;
    }
    case "Secret":
    case "ConfigMap": {
      if (v.apiVersion !== "v1") r.errors.push({ path: "apiVersion", message: 'must be "v1"' });
      if (!d.name) r.errors.push({ path: "metadata.name", message: "required" });
      if (!d.namespace)
        r.errors.push({
          path: "metadata.namespace",
          message: "required (policies reference it by namespace)",
        });
      try {
        trustObjectData(d.kind, v);
      } catch (e) {
        r.errors.push({ path: "(data)", message: errorMessage(e) });
      }
      r.valid = r.errors.length === 0;
      return r;
    }
    default: {
      const why = notSkippable(v);
      if (why) {
        r.errors.push({ path: why.path, message: why.message });
        return r;
      }
      r.valid = true;
      r.skipped = true;
      r.notes.push(`not a policy document (${String(v.kind)}): skipped`);
      return r;
    }
  }
}

/**
 * Why a document of another kind must not be skipped: it is not a Kubernetes object at all,
 * it claims our API group, or its kind is a near miss of ImagePolicy (a typo would otherwise
 * pass as "not a policy").
 */
function notSkippable(v: Record<string, unknown>): { path: string; message: string } | undefined {
  const expected = `must be ImagePolicy (${API_VERSION}), or Namespace/Secret/ConfigMap (v1)`;
  if (typeof v.kind !== "string" || v.kind === "")
    return { path: "kind", message: `${expected}, got ${JSON.stringify(v.kind)}` };
  if (typeof v.apiVersion !== "string" || v.apiVersion === "")
    return { path: "apiVersion", message: "required (a Kubernetes object has apiVersion and kind)" };
  if (v.apiVersion.split("/")[0] === API_VERSION.split("/")[0])
    return { path: "kind", message: `${expected}, got ${JSON.stringify(v.kind)}` };
  if (v.kind !== "ImagePolicy" && nearMiss(v.kind.toLowerCase(), "imagepolicy"))
    return {
      path: "kind",
      message: `${expected}, got ${JSON.stringify(v.kind)} (did you mean ImagePolicy?)`,
    };
  return undefined;
}

function nearMiss(a: string, b: string): boolean {
  return Math.abs(a.length - b.length) <= 2 && distance(a, b) <= 2;
}

function render(results: DocResult[], notes: string[]): string {
  const lines: string[] = [];
  for (const n of notes) lines.push(`note     ${n}`);
  for (const r of results) {
    const label = docLabel({
      file: r.file,
      line: r.line,
      index: r.index,
      ...(r.item !== undefined ? { item: r.item } : {}),
      kind: r.kind,
      name: r.name,
      value: undefined,
    });
    if (r.skipped) {
      lines.push(`skipped  ${label}`);
      for (const n of r.notes) lines.push(`         note: ${n}`);
    } else if (r.valid) {
      lines.push(`ok       ${label}${r.compiled ? " (compiled)" : ""}`);
      for (const n of r.notes) lines.push(`         note: ${n}`);
    } else {
      lines.push(`invalid  ${label}`);
      for (const e of r.errors) lines.push(`         ${e.path}: ${e.message}`);
    }
  }
  const bad = results.filter((r) => !r.valid).length;
  const skipped = results.filter((r) => r.skipped).length;
  const checked = results.length - skipped;
  const skipNote = skipped > 0 ? `, ${skipped} skipped` : "";
  lines.push(
    bad === 0
      ? `${checked} document(s) valid${skipNote}`
      : `${bad} of ${checked} document(s) invalid${skipNote}`,
  );
  return `${lines.join("\n")}\n`;
}
