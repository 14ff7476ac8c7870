// Command-line parsing shared by every subcommand: `--flag value`, `--flag=value`, boolean
// flags, repeatable flags, `--` to end flags, `-h/--help`, the single-letter short forms
// users expect from kubectl-era tools (`-o json`, `-ojson`, `-o=json`, `-n NS`), and `-` as a
// positional (standard input). Unknown flags and missing values
// are usage errors (exit 2): a typo must never silently fall back to a default.

import { UsageError } from "../base/errors.js";

export { UsageError };

export const EXIT = {
  OK: 0,
  /** verify: denied · doctor: a finding of severity error · policy validate: a document is invalid. */
  FAIL: 1,
  /** Bad flags, unreadable input files, invalid configuration. */
  USAGE: 2,
  /** verify: the verification could not complete (registry unreachable, timeout, …). */
  INCOMPLETE: 3,
} as const;


export type FlagType = "string" | "boolean" | "list";

export interface FlagSpec {
  name: string;
  type: FlagType;
  /** Placeholder shown in help, e.g. "FILE". */
  value?: string;
  /** Allowed values (string flags). */
  values?: readonly string[];
  help: string;
  /** One-letter short form, e.g. "o" for `-o json`. */
  short?: string;
}

export interface CommandSpec {
  /** e.g. "tollgate verify" */
  name: string;
  /** e.g. "tollgate verify IMAGE [flags]" */
  usage: string;
  summary: string;
  flags: FlagSpec[];
  /** Extra help text (exit codes, examples). */
  details?: string;
  positionals: { min: number; max: number; name: string };
}

export interface Parsed {
  help: boolean;
  flags: Map<string, string | boolean | string[]>;
  positionals: string[];
}

/** The common output flag. */
export const OUTPUT_FLAG: FlagSpec = {
  name: "output",
  type: "string",
  value: "FORMAT",
  values: ["table", "json"],
  help: "output format: table (default) or json",
  short: "o",
};

export function parseArgs(argv: readonly string[], spec: CommandSpec): Parsed {
  const byName = new Map(spec.flags.map((f) => [f.name, f]));
  const out: Parsed = { help: false, flags: new Map(), positionals: [] };
  let i = 0;
  for (; i < argv.length; i++) {
    let arg = argv[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (arg === "-h" || arg === "--help") {
      out.help = true;
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      out.positionals.push(arg);
      continue;
    }
    if (!arg.startsWith("--")) arg = expandShort(arg, spec);
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    const f = byName.get(name);
    if (!f) throw new UsageError(`unknown flag --${name}${suggest(name, [...byName.keys()])}`);
    let value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (f.type === "boolean") {
      if (value === undefined) out.flags.set(name, true);
      else if (value === "true" || value === "false") out.flags.set(name, value === "true");
      else throw new UsageError(`flag --${name} takes no value (or =true / =false), got "${value}"`);
      continue;
    }
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith("--") && next.length > 2))
        throw new UsageError(`flag --${name} needs a value${f.value ? ` (${f.value})` : ""}`);
      value = next;
      i++;
    }
    if (value === "") throw new UsageError(`flag --${name} needs a non-empty value`);
    if (f.values && !f.values.includes(value))
      throw new UsageError(`flag --${name} must be one of ${f.values.join(", ")}, got "${value}"`);
    if (f.type === "list") {
      const prev = out.flags.get(name);
      out.flags.set(name, [...(Array.isArray(prev) ? prev : []), value]);
    } else {
      if (out.flags.has(name)) throw new UsageError(`flag --${name} given more than once`);
      out.flags.set(name, value);
    }
  }
  out.positionals.push(...argv.slice(i));
  if (out.help) return out;
  const { min, max, name } = spec.positionals;
  if (out.positionals.length < min)
    throw new UsageError(`missing ${name}${min > 1 ? ` (need at least ${min})` : ""}`);
  if (out.positionals.length > max) {
    const extra = out.positionals.slice(max);
    throw new UsageError(
      max === 0
        ? `unexpected argument "${extra[0]}"`
        : `too many arguments: unexpected "${extra[0]}" after ${name}`,
    );
  }
  return out;
}

/** `-o json` → `--output`, `-ojson` / `-o=json` → `--output=json`. */
function expandShort(arg: string, spec: CommandSpec): string {
  const m = /^-([A-Za-z])=?([\s\S]*)$/.exec(arg);
  const f = m ? spec.flags.find((x) => x.short === m[1]) : undefined;
  if (!m || !f) {
    const shorts = spec.flags.filter((x) => x.short).map((x) => `-${x.short}`);
    throw new UsageError(
      `unknown flag ${arg} (flags are spelt --name${shorts.length > 0 ? `; short forms: ${shorts.join(", ")}` : ""})`,
    );
  }
  return m[2] === "" ? `--${f.name}` : `--${f.name}=${m[2]}`;
}

function suggest(name: string, known: string[]): string {
  const close = known.find((k) => k.startsWith(name) || name.startsWith(k) || distance(k, name) <= 2);
  return close ? ` (did you mean --${close}?)` : "";
}

/** Levenshtein distance (flag suggestions, near-miss kinds). */
export function distance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  return typeof v === "string" ? v : undefined;
}

export function bool(p: Parsed, name: string): boolean {
  return p.flags.get(name) === true;
}

export function list(p: Parsed, name: string): string[] {
  const v = p.flags.get(name);
  return Array.isArray(v) ? v : [];
}

export function helpText(spec: CommandSpec): string {
  const lines = [`Usage: ${spec.usage}`, "", spec.summary, ""];
  if (spec.flags.length > 0) {
    lines.push("Flags:");
    const rows = [
      ...spec.flags.map((f) => {
        const long = `--${f.name}${f.type === "boolean" ? "" : ` ${f.value ?? "VALUE"}`}`;
        const left = f.short ? `-${f.short}, ${long}` : `    ${long}`;
        return [left, f.help + (f.type === "list" ? " (repeatable)" : "")] as const;
      }),
      ["-h, --help", "show this help"] as const,
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    for (const [l, r] of rows) lines.push(`  ${l.padEnd(w)}  ${r}`);
    lines.push("");
  }
  if (spec.details) lines.push(spec.details.trimEnd(), "");
  return lines.join("\n");
}

/** Runs a command body: prints usage errors with a hint, maps them to exit 2. */
export async function runCommand(
  spec: CommandSpec,
  argv: readonly string[],
  body: (p: Parsed) => Promise<number>,
  io: { out: (s: string) => void; err: (s: string) => void } = stdio,
): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseArgs(argv, spec);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`${spec.name}: ${e.message}\n`);
      io.err(`Run '${spec.name} --help' for usage.\n`);
      return EXIT.USAGE;
    }
    throw e;
  }
  if (parsed.help) {
    io.out(helpText(spec));
    return EXIT.OK;
  }
  try {
    return await body(parsed);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`${spec.name}: ${e.message}\n`);
      return EXIT.USAGE;
    }
    throw e;
  }
}

export const stdio = {
  out: (s: string) => {
    process.stdout.write(s);
  },
  err: (s: string) => {
    process.stderr.write(s);
  },
};
