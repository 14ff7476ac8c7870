// The one command-line flag grammar every binary uses (the CLI's subcommands, `tollgate
// install`, the agent, the pull verifier): `--flag value`, `--flag=value`, one-letter short
// forms where a flag declares one, bare booleans, repeatable lists, `--` to end flags.
// Problems are returned, not thrown, in argv order, so a caller can report the first (the
// CLI) or all of them (the agent's configuration error).
// An unknown flag is a problem naming it: a typo must never silently keep a default.
// Imports nothing: the pull verifier's fast path loads it.

export type FlagKind = "string" | "boolean" | "list";

export interface FlagDef {
  kind: FlagKind;
  /** Placeholder named in a missing-value problem, e.g. "FILE". */
  placeholder?: string;
  /** Allowed values (string and list flags). */
  values?: readonly string[];
  /** One-letter short form: `-o json`, `-ojson`, `-o=json` are `--output json`. */
  short?: string;
}

export interface FlagGrammar {
  flags: Readonly<Record<string, FlagDef>>;
  /** `-h` / `--help` ask for help (else they are flags like any other). */
  help?: boolean;
  /**
   * Go's flag package, as containerd's bindir contract spells it: `-name` and `--name` alike,
   * every flag takes a value, an unknown flag (with its value) and stray words are skipped —
   * a newer containerd may pass more.
   */
  go?: boolean;
  /** Values may be empty or blank (the agent: `--metrics-listen=` disables metrics). */
  allowEmpty?: boolean;
  /** A string flag given again: a problem (default), or the later value wins. */
  repeat?: "error" | "last";
  /**
   * A bare boolean flag takes the next word as its value unless that is a flag
   * (`--nri-enabled false`), and any value is passed on as a string for the caller to judge.
   */
  looseBooleans?: boolean;
  /** No positional arguments: each is a problem. */
  noPositionals?: boolean;
  /** Wording of the repeated-flag problem (`tollgate install` says "given twice"). */
  repeatedText?: (flag: string) => string;
}

export interface ParsedFlags {
  help: boolean;
  /** Every flag occurrence in argv order: a bare boolean is `true`. */
  given: Array<[name: string, value: string | boolean]>;
  /** By name: the value of a string flag, all values of a list flag, a boolean's value. */
  values: Map<string, string | boolean | string[]>;
  positionals: string[];
  /** Human sentences in argv order; empty when the command line is well formed. */
  problems: string[];
}

export function parseFlags(argv: readonly string[], g: FlagGrammar): ParsedFlags {
  const out: ParsedFlags = { help: false, given: [], values: new Map(), positionals: [], problems: [] };
  const dash = g.go ? "-" : "--";
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (g.help && (arg === "-h" || arg === "--help")) {
      out.help = true;
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      out.positionals.push(arg);
      continue;
    }
    let body: string;
    if (g.go) body = arg.replace(/^--?/, "");
    else if (arg.startsWith("--")) body = arg.slice(2);
    else {
      const m = /^-([A-Za-z])=?([\s\S]*)$/.exec(arg);
      const long = m && Object.keys(g.flags).find((n) => g.flags[n]!.short === m[1]);
      if (!m || !long) {
        const shorts = Object.values(g.flags).flatMap((d) => (d.short ? [`-${d.short}`] : []));
        out.problems.push(
          `unknown flag ${arg} (flags are spelt --name${shorts.length > 0 ? `; short forms: ${shorts.join(", ")}` : ""})`,
        );
        continue;
      }
      body = m[2] === "" ? long : `${long}=${m[2]}`;
    }
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    let value: string | undefined = eq >= 0 ? body.slice(eq + 1) : undefined;
    const def = g.flags[name];
    if (!def) {
      if (!g.go) out.problems.push(`unknown flag --${name}${suggest(name, Object.keys(g.flags))}`);
      // Its value goes with it (Go: whatever follows; else a word that is not a flag), so one
      // typo is one problem, not also a stray argument.
      const next = argv[i + 1];
      if (value === undefined && next !== undefined && (g.go || !next.startsWith("-"))) i++;
      continue;
    }
    const flag = `${dash}${name}`;
    if (def.kind === "boolean" && !g.go) {
      if (g.looseBooleans) {
        if (value === undefined && i + 1 < argv.length && !argv[i + 1]!.startsWith("--")) value = argv[++i]!;
        record(out, name, def, value ?? true);
      } else if (value === undefined) record(out, name, def, true);
      else if (value === "true" || value === "false") record(out, name, def, value === "true");
      else out.problems.push(`flag ${flag} takes no value (or =true / =false), got "${value}"`);
      continue;
    }
    if (value === undefined) {
      const next = argv[i + 1];
      // A flag where the value should be is a forgotten value, not a value (Go: it is one).
      if (next === undefined || (!g.go && next.startsWith("--") && next.length > 2)) {
        out.problems.push(`flag ${flag} needs a value${def.placeholder ? ` (${def.placeholder})` : ""}`);
        continue;
      }
      value = next;
      i++;
    }
    if (!g.allowEmpty && value.trim() === "") {
      out.problems.push(`flag ${flag} needs a non-empty value`);
      continue;
    }
    if (def.values && !def.values.includes(value)) {
      out.problems.push(`flag ${flag} must be one of ${def.values.join(", ")}, got "${value}"`);
      continue;
    }
    if (def.kind === "string" && out.values.has(name) && g.repeat !== "last") {
      out.problems.push(g.repeatedText?.(flag) ?? `flag ${flag} given more than once`);
      continue;
    }
    record(out, name, def, value);
  }
  out.positionals.push(...argv.slice(i));
  if (g.noPositionals)
    for (const p of out.positionals) out.problems.push(`unexpected argument ${JSON.stringify(p)}`);
  return out;
}

function record(out: ParsedFlags, name: string, def: FlagDef, value: string | boolean): void {
  out.given.push([name, value]);
  if (def.kind === "list") {
    const prev = out.values.get(name);
    out.values.set(name, [...(Array.isArray(prev) ? prev : []), String(value)]);
  } else out.values.set(name, value);
}

/** " (did you mean --x?)" for a near miss among the known names, else "". */
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
