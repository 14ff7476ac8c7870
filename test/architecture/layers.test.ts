// The layering rules of docs/architecture.md, enforced: every import of every hand-written
// source file (src/gen excluded) is checked against the folder table below. A new import
// that crosses a layer the wrong way fails here, naming the file and the import.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const SRC = path.resolve(__dirname, "../../src");

/** Folder → the folders it may import (besides itself). Data flows one way: input → agent → engine. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  base: [],
  engine: ["base"],
  "nri-plugin": ["gen"],
  containerd: ["base", "engine", "gen"],
  "policy-source": ["base", "engine"],
  k8s: ["base", "engine", "policy-source"],
  config: ["base", "engine"],
  "agent-api": ["base", "engine"],
  decision: ["base", "engine", "policy-source", "k8s", "config"],
  agent: [
    "base",
    "engine",
    "gen",
    "nri-plugin",
    "containerd",
    "policy-source",
    "config",
    "agent-api",
    "decision",
  ],
  "pull-verifier": ["base", "config", "agent-api", "decision"],
  installer: ["base", "config", "containerd", "pull-verifier"],
  cli: [
    "base",
    "engine",
    "containerd",
    "policy-source",
    "k8s",
    "config",
    "agent-api",
    "decision",
    "installer",
    "pull-verifier",
  ],
};

/** Imports the table forbids but we allow, each with its reason. Keyed "from-file → target-file". */
const ALLOWED_EXCEPTIONS: Record<string, string> = {
  "cli/agent.ts → agent/main.ts": "`tollgate agent` is the agent's own entry point (lazy import)",
};

/** Files outside src that src may read, with the reason. */
const OUTSIDE_SRC: Record<string, string> = {
  "../package.json": "the version the binaries report",
};

/** Packages a folder must never import (the engine stays free of containerd, NRI and Kubernetes). */
const FORBIDDEN_PACKAGES: Record<string, readonly string[]> = {
  base: ["*"],
  engine: ["@kubernetes/client-node", "@grpc/grpc-js", "pino", "prom-client"],
  "policy-source": ["@kubernetes/client-node", "@grpc/grpc-js"],
  config: ["@kubernetes/client-node", "@grpc/grpc-js"],
};

/**
 * The engine's public entry points for code outside it. `index.ts` is the one entry; the
 * rest are named here until index.ts re-exports them (each line says why it is still open).
 */
const ENGINE_ENTRY_POINTS: Record<string, string> = {
  "engine/index.ts": "the entry point",
  "engine/types.ts": "plain boundary data (Verdict, Subject, …), type-only for most callers",
  "engine/errors.ts": "the engine's error type and codes, needed by every caller that classifies failures",
  "engine/identity.ts":
    "pending: image identity is used by the gate, exemptions and the CLI before verification",
  "engine/reference.ts": "pending: reference parsing, used with identity",
  "engine/limits.ts": "pending: the agent builds the verification limits itself (decision/wiring.ts)",
  "engine/policy/model.ts": "pending: the policy model is what policy-source and k8s build",
  "engine/policy/compile.ts": "pending: policy-source and the CLI compile policies",
  "engine/policy/errors.ts": "pending: PolicyValidationError is caught by policy-source and the CLI",
  "engine/policy/pem.ts": "pending: trust-material PEM reading shared with k8s/policy-source",
  "engine/policy/validate.ts": "pending: `tollgate policy validate`",
  "engine/notation/policy.ts": "pending: `tollgate policy import notation` reads notation trust policies",
  "engine/registry/client.ts": "pending: the agent counts registry requests (RequestEvent type)",
  "engine/registry/credentials/index.ts": "pending: the credential resolver is built by the agent's wiring",
  "engine/registry/credentials/spec.ts": "pending: the agent configuration validates provider specs",
  "engine/keys/config.ts":
    "pending: the agent configuration validates keyManagement (a light module: the pull verifier parses the configuration, engine/index.ts would load the engine)",
  "engine/registry/credentials/resolver.ts": "pending: provider status in the agent's API types",
};

interface ImportEdge {
  /** Importing file, relative to src (e.g. "cli/verify.ts"). */
  from: string;
  /** The specifier as written. */
  spec: string;
  /** Resolved file relative to src for relative imports; undefined for packages. */
  target?: string;
}

const IMPORT_RE =
  /(?:^|[\s;])(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|(?:^|[\s;(=])import\s*\(\s*["']([^"']+)["']\s*\)|^import\s+["']([^"']+)["']/gm;

/** Every import/export-from/dynamic import in a file's text. */
function importsOf(from: string, text: string): ImportEdge[] {
  const out: ImportEdge[] = [];
  // Comments may quote imports; strip them first (line and block comments, not in strings).
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
  for (const m of code.matchAll(IMPORT_RE)) {
    const spec = (m[1] ?? m[2] ?? m[3]) as string;
    if (spec.startsWith(".")) {
      const resolved = path.posix
        .normalize(path.posix.join(path.posix.dirname(from), spec))
        .replace(/\.js$/, ".ts");
      out.push({ from, spec, target: resolved });
    } else out.push({ from, spec });
  }
  return out;
}

const layerOf = (file: string): string => file.split("/")[0] as string;
const packageOf = (spec: string): string =>
  spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] as string);

/** The rule violations among a set of files ({path relative to src → text}). */
function violations(files: Record<string, string>): string[] {
  const bad: string[] = [];
  for (const [file, text] of Object.entries(files)) {
    const layer = layerOf(file);
    const may = MAY_IMPORT[layer];
    if (!may) {
      bad.push(`${file}: folder src/${layer} is not in the layering table`);
      continue;
    }
    for (const e of importsOf(file, text)) {
      if (e.target === undefined) {
        const pkg = packageOf(e.spec);
        if (pkg.startsWith("node:")) continue;
        const forbidden = FORBIDDEN_PACKAGES[layer] ?? [];
        if (forbidden.includes("*") || forbidden.includes(pkg))
          bad.push(`${file}: imports package ${pkg}, which src/${layer} must not use`);
        continue;
      }
      if (e.target.startsWith("..")) {
        if (OUTSIDE_SRC[e.target]) continue;
        bad.push(`${file}: imports ${e.spec}, outside src`);
        continue;
      }
      const to = layerOf(e.target);
      if (to === layer) continue;
      const key = `${file} → ${e.target}`;
      if (ALLOWED_EXCEPTIONS[key]) continue;
      if (!may.includes(to)) {
        bad.push(`${file}: src/${layer} may not import src/${to} (${e.spec})`);
        continue;
      }
      if (to === "engine" && !ENGINE_ENTRY_POINTS[e.target])
        bad.push(`${file}: imports ${e.target}, not one of the engine's entry points (${e.spec})`);
    }
  }
  return bad;
}

function sourceFiles(dir: string, base = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const rel = base ? `${base}/${ent.name}` : ent.name;
    if (ent.isDirectory()) {
      if (rel === "gen") continue; // generated by ts-proto
      Object.assign(out, sourceFiles(path.join(dir, ent.name), rel));
    } else if (ent.name.endsWith(".ts")) out[rel] = readFileSync(path.join(dir, ent.name), "utf8");
  }
  return out;
}

describe("layering", () => {
  const files = sourceFiles(SRC);

  it("reads the imports of every hand-written source file", () => {
    expect(Object.keys(files).length).toBeGreaterThan(100);
    expect(Object.keys(files).some((f) => f.startsWith("gen/"))).toBe(false);
    // The parser sees static, type-only, re-export and dynamic imports.
    expect(
      importsOf(
        "cli/x.ts",
        [
          'import { a } from "../engine/index.js";',
          'import type { B } from "../base/errors.js";',
          'export { c } from "./c.js";',
          'const m = await import("../agent/main.js");',
          'import "./side-effect.js";',
          '// import { no } from "../agent/gate.js";',
        ].join("\n"),
      ).map((e) => e.target),
    ).toEqual(["engine/index.ts", "base/errors.ts", "cli/c.ts", "agent/main.ts", "cli/side-effect.ts"]);
  });

  it("src follows the import rules", () => {
    expect(violations(files)).toEqual([]);
  });

  it("every named exception and entry point still exists (no stale allowances)", () => {
    for (const key of Object.keys(ALLOWED_EXCEPTIONS)) {
      const [from, to] = key.split(" → ") as [string, string];
      expect(files[from], key).toBeDefined();
      expect(files[to], key).toBeDefined();
      expect(
        importsOf(from, files[from] as string).some((e) => e.target === to),
        `${key} is no longer imported: drop the exception`,
      ).toBe(true);
    }
    for (const f of Object.keys(ENGINE_ENTRY_POINTS)) expect(files[f], f).toBeDefined();
  });

  it("fails on a deliberately forbidden import", () => {
    const synthetic = {
      // the engine reaching into Kubernetes code and the Kubernetes client
      "engine/bad.ts": 'import { x } from "../k8s/source.js";\nimport k from "@kubernetes/client-node";\n',
      // the pull verifier's fallback reaching into agent internals again
      "pull-verifier/fallback.ts": 'import { PullDecider } from "../agent/gate.js";\n',
      // the CLI importing an engine internal instead of an entry point
      "cli/deep.ts": 'import type { Cert } from "../engine/notation/x509.js";\n',
      // the base layer importing anything
      "base/bad.ts": 'import { EngineError } from "../engine/errors.js";\n',
      // an allowed one, for contrast
      "cli/ok.ts": 'import { EngineError } from "../engine/errors.js";\n',
    };
    expect(violations(synthetic)).toEqual([
      "engine/bad.ts: src/engine may not import src/k8s (../k8s/source.js)",
      "engine/bad.ts: imports package @kubernetes/client-node, which src/engine must not use",
      "pull-verifier/fallback.ts: src/pull-verifier may not import src/agent (../agent/gate.js)",
      "cli/deep.ts: imports engine/notation/x509.ts, not one of the engine's entry points (../engine/notation/x509.js)",
      "base/bad.ts: src/base may not import src/engine (../engine/errors.js)",
    ]);
  });
});
