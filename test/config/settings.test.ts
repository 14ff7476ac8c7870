// The settings table (src/config/settings.ts) is the one declaration of every agent
// setting: the derived defaults, flags and environment must agree with it, and the
// reference table in docs/configuration.md must list the same keys with the same
// defaults, flag and environment names, ranges and choices.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_CONFIG_PATH,
  defaultConfig,
  fileForm,
  loadConfig,
  parseFlags,
  validateConfig,
} from "../../src/config/agent.js";
import { SETTINGS, type Setting } from "../../src/config/settings.js";
import { FAST_PATH_DEFAULTS } from "../../src/pull-verifier/run.js";

const ROWS = SETTINGS as readonly Setting[];
const DOC = readFileSync(path.resolve(__dirname, "../../docs/configuration.md"), "utf8");

interface DocRow {
  key: string;
  type: string;
  default: string;
  names: string;
}

/** The rows of the "### Fields" table of the agent configuration. */
function docRows(): DocRow[] {
  const start = DOC.indexOf("### Fields");
  const lines = DOC.slice(start).split("\n").slice(1);
  const out: DocRow[] = [];
  for (const line of lines.slice(lines.findIndex((l) => l.startsWith("|")))) {
    if (!line.startsWith("|")) break;
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    const key = /^`([^`]+)`$/.exec(cells[1] ?? "")?.[1];
    if (!key) continue; // the header and its rule
    out.push({ key, type: cells[2]!, default: cells[3]!, names: cells[4]! });
  }
  return out;
}

/** The default as the docs write it: the first code span, quotes dropped; "none" for absent. */
function docDefault(cell: string): string {
  if (cell.startsWith("none")) return "none";
  const code = /`([^`]*)`/.exec(cell)?.[1] ?? cell;
  return code.replace(/^"(.+)"$/, "$1");
}

function expectedDefault(s: Setting): string {
  if (s.docDefault !== undefined) return s.docDefault;
  const d = s.default;
  if (d === undefined) return "none";
  if (Array.isArray(d)) return `[${d.join(", ")}]`;
  if (d === "") return '""';
  return String(d);
}

describe("settings table", () => {
  it("derives the defaults, and the defaults are valid", () => {
    const d = defaultConfig() as unknown as Record<string, Record<string, unknown>>;
    for (const s of ROWS) {
      const [section, field] = s.key.split(".") as [string, string];
      expect(d[section]?.[field], s.key).toEqual(s.default);
    }
    expect(validateConfig({})).toEqual(defaultConfig());
  });

  it("a validated configuration spelt as a file validates to itself (the installer writes one)", () => {
    const cfg = validateConfig({
      keyManagement: { azure: { sources: ["managedIdentity"], clientId: "c", maxStaleSeconds: 600 } },
      policy: { exemptNamespaces: ["kube-system"], kubeconfig: "/k" },
    });
    expect(validateConfig(JSON.parse(JSON.stringify(fileForm(cfg))))).toEqual(cfg);
    expect(validateConfig(JSON.parse(JSON.stringify(fileForm(defaultConfig()))))).toEqual(defaultConfig());
  });

  it("the pull verifier's fast path restates the defaults it needs, unchanged", () => {
    const d = defaultConfig();
    expect(FAST_PATH_DEFAULTS).toEqual({
      timeoutMs: d.pullVerifier.timeoutMs,
      socket: d.api.socket,
      configPath: DEFAULT_CONFIG_PATH,
    });
  });

  it("keys, flags and environment names are unique; every flag and variable sets its key", async () => {
    for (const field of ["key", "flag", "env"] as const) {
      const names = ROWS.map((s) => s[field]).filter((n) => n !== undefined);
      expect(new Set(names).size, field).toBe(names.length);
    }
    for (const s of ROWS.filter((r) => r.flag && r.type.kind !== "bool")) {
      expect(parseFlags([`--${s.flag}`, "v"]).overrides, s.key).toEqual([[s.key, "v"]]);
    }
    // The environment layer: each variable sets its key (first candidate value the key accepts).
    for (const s of ROWS.filter((r) => r.env)) {
      const [section, field] = s.key.split(".") as [string, string];
      const candidates = [
        ...(s.type.values ?? []).filter((v) => v !== s.default),
        "/from/env",
        "127.0.0.2:1",
      ];
      let set: unknown;
      for (const v of candidates) {
        const cfg = await loadConfig({ path: "/dev/null", env: { [s.env!]: v } }).catch(() => undefined);
        const got = (cfg as unknown as Record<string, Record<string, unknown>> | undefined)?.[section]?.[
          field
        ];
        if (got === v) set = v;
        if (set !== undefined) break;
      }
      expect(set, s.env).toBeDefined();
    }
  });

  it("a bad value of each checked kind is reported under its key", () => {
    for (const s of ROWS) {
      if (s.type.kind === "custom") continue;
      const [section, field] = s.key.split(".") as [string, string];
      const bad = s.type.kind === "list" ? [""] : s.type.kind === "bool" ? "maybe" : { no: 1 };
      expect(() => validateConfig({ [section]: { [field]: bad } }), s.key).toThrow(`${s.key}: must be`);
    }
  });
});

describe("docs/configuration.md agrees with the settings table", () => {
  const docs = docRows();

  it("the same keys, in the same order", () => {
    expect(docs.map((r) => r.key)).toEqual(ROWS.map((s) => s.key));
  });

  it.each(ROWS.map((s) => [s.key, s] as const))("%s: default, flag, environment, type", (_key, s) => {
    const doc = docs.find((r) => r.key === s.key);
    expect(doc, "documented").toBeDefined();
    expect(docDefault(doc!.default), "default").toBe(expectedDefault(s));
    // Names in parentheses belong to other programs (the pull verifier's own variable).
    const names = doc!.names.replace(/\([^)]*\)/g, "");
    expect(names.match(/--[a-z][a-z-]*/g) ?? [], "flag").toEqual(s.flag ? [`--${s.flag}`] : []);
    expect(names.match(/TOLLGATE_[A-Z_]+/g) ?? [], "environment").toEqual(s.env ? [s.env] : []);
    const t = s.type;
    if (t.kind === "bool") expect(doc!.type).toBe("bool");
    if (t.kind === "int") expect(doc!.type).toBe(`integer ${t.min}–${t.max}`);
    if (t.kind === "number") expect(doc!.type).toBe(`number ${t.min}–${t.max}`);
    if (t.kind === "oneOf") expect(doc!.type.match(/`[^`]+`/g)).toEqual(t.values!.map((v) => `\`${v}\``));
    if (t.kind === "path") expect(doc!.type).toMatch(/^absolute path/);
    if (t.kind === "list") expect(doc!.type).toMatch(/^list/);
    if (t.kind === "list" && s.flag) expect(doc!.names, "list flag").toContain("repeatable");
  });
});
