// The one flag grammar (src/base/flags.ts) the CLI, the installer, the agent and the pull
// verifier share: both spellings of a value, booleans, lists, `--`, and every problem named.
import { describe, expect, it } from "vitest";
import { type FlagGrammar, parseFlags } from "../../src/base/flags.js";

const G: FlagGrammar = {
  flags: {
    policy: { kind: "string", placeholder: "FILE" },
    output: { kind: "string", values: ["table", "json"] },
    quiet: { kind: "boolean" },
    image: { kind: "list" },
  },
  help: true,
};

describe("parseFlags", () => {
  it("--flag value and --flag=value are the same; lists repeat; -- ends flags", () => {
    const a = parseFlags(["x", "--policy=p", "--image", "a", "--image=b", "--quiet", "--", "--y"], G);
    const b = parseFlags(["--policy", "p", "--image=a", "--quiet=true", "x", "--image", "b", "--", "--y"], G);
    for (const p of [a, b]) {
      expect(p.problems).toEqual([]);
      expect(p.values).toEqual(
        new Map<string, unknown>([
          ["policy", "p"],
          ["image", ["a", "b"]],
          ["quiet", true],
        ]),
      );
      expect(p.positionals).toEqual(["x", "--y"]);
    }
    expect(a.given).toEqual([
      ["policy", "p"],
      ["image", "a"],
      ["image", "b"],
      ["quiet", true],
    ]);
  });

  it("names every problem, in argv order", () => {
    const p = parseFlags(
      ["--polcy", "p", "-x", "--quiet=maybe", "--output", "xml", "--policy", "a", "--policy=b", "--image="],
      G,
    );
    expect(p.problems).toEqual([
      "unknown flag --polcy (did you mean --policy?)",
      "unknown flag -x (flags are spelt --name)",
      'flag --quiet takes no value (or =true / =false), got "maybe"',
      'flag --output must be one of table, json, got "xml"',
      "flag --policy given more than once",
      "flag --image needs a non-empty value",
    ]);
    expect(parseFlags(["--bogus", "v", "x", "--bogus2", "--quiet"], G)).toMatchObject({
      problems: ["unknown flag --bogus", "unknown flag --bogus2"],
      positionals: ["x"],
      given: [["quiet", true]],
    });
    expect(parseFlags(["--policy"], G).problems).toEqual(["flag --policy needs a value (FILE)"]);
    expect(parseFlags(["--policy", "--quiet"], G).problems).toEqual(["flag --policy needs a value (FILE)"]);
    expect(parseFlags(["-h"], G).help).toBe(true);
    expect(parseFlags(["-h"], { ...G, help: false }).problems).toEqual([
      "unknown flag -h (flags are spelt --name)",
    ]);
  });

  it("short forms: -o json, -ojson, -o=json; an unknown one lists those there are", () => {
    const g: FlagGrammar = { flags: { ...G.flags, output: { kind: "string", short: "o" } }, help: true };
    for (const argv of [["-o", "json"], ["-ojson"], ["-o=json"], ["--output=json"]])
      expect(parseFlags(argv, g).values.get("output"), argv.join(" ")).toBe("json");
    expect(parseFlags(["-x", "-"], g)).toMatchObject({
      problems: ["unknown flag -x (flags are spelt --name; short forms: -o)"],
      positionals: ["-"],
    });
  });

  it("options: no positionals, later wins, loose booleans, empty values, own wording", () => {
    const g: FlagGrammar = {
      flags: { on: { kind: "boolean" }, level: { kind: "string" } },
      noPositionals: true,
      repeat: "last",
      looseBooleans: true,
      allowEmpty: true,
      repeatedText: (f) => `flag ${f} given twice`,
    };
    const p = parseFlags(["--on", "false", "--level", "a", "--level=", "stray", "--on"], g);
    expect(p.given).toEqual([
      ["on", "false"],
      ["level", "a"],
      ["level", ""],
      ["on", true],
    ]);
    expect(p.problems).toEqual(['unexpected argument "stray"']);
    expect(parseFlags(["--level", "a", "--level", "b"], { ...g, repeat: "error" }).problems).toEqual([
      "flag --level given twice",
    ]);
  });

  it("Go style (containerd's bindir contract): -x or --x, unknown flags and stray words skipped", () => {
    const g: FlagGrammar = { flags: { name: { kind: "string" }, digest: { kind: "string" } }, go: true };
    const p = parseFlags(["-name", "r", "--new-flag", "v", "-other=1", "word", "--digest=d", "-name", "-x"], {
      ...g,
      repeat: "last",
    });
    expect(p.problems).toEqual([]);
    expect(p.values).toEqual(
      new Map([
        ["name", "-x"],
        ["digest", "d"],
      ]),
    );
    expect(parseFlags(["-name"], g).problems).toEqual(["flag -name needs a value"]);
  });
});
