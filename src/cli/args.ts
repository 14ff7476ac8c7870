// The CLI's subcommands: their flag specs (for help text, with the one-letter short forms
// users expect from kubectl-era tools: `-o json`, `-ojson`, `-o=json`, `-n NS`), positional
// arguments (`-` is one: standard input), exit codes and usage errors. The flag grammar
// itself is base/flags.ts; its first problem is the usage error (exit 2): a typo must never
// silently fall back to a default.

import { UsageError } from "../base/errors.js";
import { type FlagKind, parseFlags } from "../base/flags.js";

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

export type FlagType = FlagKind;

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
  const flags = Object.fromEntries(
    spec.flags.map((f) => [f.name, { kind: f.type, placeholder: f.value, values: f.values, short: f.short }]),
  );
  const p = parseFlags(argv, { flags, help: true });
  if (p.problems.length > 0) throw new UsageError(p.problems[0]!);
  const out: Parsed = { help: p.help, flags: p.values, positionals: p.positionals };
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
