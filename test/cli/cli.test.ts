// The CLI surface: help, version, unknown commands and flags, exit codes.
import { readFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseFlags } from "../../src/config/agent.js";
import { AGENT_FLAGS } from "../../src/cli/agent.js";
import { helpText, parseArgs, UsageError } from "../../src/cli/args.js";
import { policyValidateSpec } from "../../src/cli/policy.js";
import { verifySpec } from "../../src/cli/verify.js";
import { repoRoot } from "../support/tools.js";
import { buildCli, runCli } from "./helpers.js";

let cli: string;
beforeAll(async () => {
  cli = await buildCli();
});

describe("tollgate (top level)", () => {
  it("--version prints the package version", async () => {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string };
    const r = await runCli(cli, ["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`tollgate ${pkg.version}`);
  });

  it("--help lists every command and the exit codes", async () => {
    const r = await runCli(cli, ["--help"]);
    expect(r.code).toBe(0);
    for (const c of ["agent", "verify", "doctor", "policy"])
      expect(r.stdout).toMatch(new RegExp(`^  ${c} `, "m"));
    expect(r.stdout).toContain("Exit codes");
  });

  it("no command → usage on stderr, exit 2", async () => {
    const r = await runCli(cli, []);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("Usage: tollgate COMMAND");
  });

  it("unknown command → clear error, exit 2", async () => {
    const r = await runCli(cli, ["verfiy", "x"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "verfiy"');
  });

  it.each([
    ["verify", "tollgate verify IMAGE"],
    ["doctor", "tollgate doctor"],
    ["agent", "tollgate agent"],
  ])("%s --help prints usage and exit codes, exit 0", async (cmd, usage) => {
    const r = await runCli(cli, [cmd, "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: ${usage}`);
    expect(r.stdout).toContain("Exit codes:");
  });

  it("policy --help / policy validate --help", async () => {
    const a = await runCli(cli, ["policy", "--help"]);
    expect(a.code).toBe(0);
    expect(a.stdout).toContain("validate FILE...");
    const b = await runCli(cli, ["policy", "validate", "--help"]);
    expect(b.code).toBe(0);
    expect(b.stdout).toContain("Usage: tollgate policy validate FILE...");
    const c = await runCli(cli, ["policy", "lint", "x"]);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('unknown command "lint"');
    const d = await runCli(cli, ["policy"]);
    expect(d.code).toBe(2);
  });
});

describe("flags", () => {
  it("unknown flag → exit 2 with a suggestion", async () => {
    const r = await runCli(cli, ["verify", "busybox", "--polcy", "x.yaml"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown flag --polcy (did you mean --policy?)");
    expect(r.stderr).toContain("tollgate verify --help");
  });

  it("missing value, bad enum value, repeated single flag → exit 2", async () => {
    const a = await runCli(cli, ["verify", "busybox", "--policy"]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain("flag --policy needs a value");
    const b = await runCli(cli, ["doctor", "--output=yaml"]);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain("flag --output must be one of table, json");
    const c = await runCli(cli, ["verify", "busybox", "--policy=a", "--policy", "b"]);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain("given more than once");
  });

  it("missing and extra positionals → exit 2", async () => {
    const a = await runCli(cli, ["verify", "--policy", "p.yaml"]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain("missing IMAGE");
    const b = await runCli(cli, ["verify", "a", "b", "--policy", "p.yaml"]);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('unexpected "b"');
    const c = await runCli(cli, ["doctor", "extra"]);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('unexpected argument "extra"');
  });

  it("parser: --flag=value and --flag value are the same; -- ends flags", () => {
    const a = parseArgs(["img", "--policy=p.yaml", "--output", "json"], verifySpec);
    const b = parseArgs(["--policy", "p.yaml", "--output=json", "img"], verifySpec);
    expect(a.flags).toEqual(b.flags);
    expect(a.positionals).toEqual(["img"]);
    expect(b.positionals).toEqual(["img"]);
    const c = parseArgs(["--policy", "p", "--", "--weird-name"], verifySpec);
    expect(c.positionals).toEqual(["--weird-name"]);
    expect(() => parseArgs(["img", "-x"], verifySpec)).toThrow(UsageError);
    expect(() => parseArgs(["img", "-x"], verifySpec)).toThrow(/short forms: -n, -o/);
  });

  it("parser: short forms -o json, -ojson, -o=json, -n NS mean the long flags; - is a positional", () => {
    const long = parseArgs(["img", "--output", "json", "--namespace", "team-a"], verifySpec);
    for (const argv of [
      ["img", "-o", "json", "-n", "team-a"],
      ["-ojson", "img", "-nteam-a"],
      ["img", "-o=json", "-n=team-a"],
    ]) {
      const p = parseArgs(argv, verifySpec);
      expect(p.flags, argv.join(" ")).toEqual(long.flags);
      expect(p.positionals).toEqual(["img"]);
    }
    expect(() => parseArgs(["img", "-o", "yaml"], verifySpec)).toThrow(/--output must be one of table, json/);
    expect(() => parseArgs(["img", "-o", "json", "--output", "json"], verifySpec)).toThrow(/more than once/);
    expect(parseArgs(["-"], policyValidateSpec).positionals).toEqual(["-"]);
    // Help shows the short forms next to the long ones.
    expect(helpText(verifySpec)).toMatch(/-o, --output FORMAT/);
    expect(helpText(verifySpec)).toMatch(/-n, --namespace NS/);
    expect(() => parseArgs(["img", "--quiet=maybe"], verifySpec)).toThrow(/takes no value/);
  });

  it("agent: every flag in `tollgate agent --help` is one the agent accepts", () => {
    for (const [flag] of AGENT_FLAGS) {
      const [name, value] = flag.split(" ");
      const argv = value === undefined ? [name!] : [name!, value === "BOOL" ? "true" : "x"];
      expect(() => parseFlags(argv), flag).not.toThrow();
    }
  });

  it("agent: unknown flag → exit 2 with the agent's message", async () => {
    const r = await runCli(cli, ["agent", "--nri-sockett", "/x"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown flag --nri-sockett");
  });

  it("agent: unreadable config file → exit 2", async () => {
    const r = await runCli(cli, ["agent", "--config", "/nonexistent/agent.yaml"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("/nonexistent/agent.yaml");
  });
});
