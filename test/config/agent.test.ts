import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  defaultConfig,
  loadConfig,
  parseFlags,
  validateConfig,
} from "../../src/config/agent.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-cfg-"));
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe("agent configuration", () => {
  it("defaults are valid", () => {
    expect(validateConfig({})).toEqual(defaultConfig());
  });

  it("file < environment < flags", async () => {
    const p = file(
      "a.yaml",
      [
        "nri: { socket: /tmp/nri.sock, pluginIndex: '20' }",
        "policy:",
        "  dir: /etc/p",
        "  defaultPolicy: strict",
        "  exemptImages: ['registry.k8s.io/pause:3.10']",
        "pullVerifier: { mode: any-policy-in-use }",
        "log: { level: warn }",
      ].join("\n"),
    );
    const cfg = await loadConfig({
      path: p,
      env: { TOLLGATE_LOG_LEVEL: "debug", TOLLGATE_DEFAULT_POLICY: "from-env" },
      argv: [
        "--default-policy=from-flag",
        "--exempt-image",
        "a.example/x:1",
        "--exempt-image",
        "b.example/y:2",
        "--evict-on-sync",
      ],
    });
    expect(cfg.file).toBe(p);
    expect(cfg.nri).toMatchObject({ socket: "/tmp/nri.sock", pluginIndex: "20", evictOnSync: true });
    expect(cfg.policy.defaultPolicy).toBe("from-flag");
    expect(cfg.policy.exemptImages).toEqual(["a.example/x:1", "b.example/y:2"]);
    expect(cfg.log.level).toBe("debug");
    expect(cfg.pullVerifier.mode).toBe("any-policy-in-use");
  });

  it("reports every problem with its key path", () => {
    try {
      validateConfig({
        nri: { pluginIndex: "7", socket: "relative.sock", bogus: 1 },
        gate: { budgetFraction: 1.5 },
        pullVerifier: { mode: "sometimes" },
        policy: { source: "files", dir: null, exemptImages: ["*"], exemptNamespaces: ["Bad_NS"] },
        metrics: { listen: "nope" },
        extra: {},
      });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const probs = (e as ConfigError).problems.join("\n");
      for (const s of [
        "extra: unknown key",
        "nri.bogus: unknown key",
        "nri.pluginIndex: must be two digits",
        "nri.socket: must be an absolute path",
        "gate.budgetFraction: must be a number between 0.05 and 0.9",
        "pullVerifier.mode: must be one of default-policy, any-policy-in-use",
        'policy.exemptImages: "*"',
        'policy.exemptNamespaces: "Bad_NS"',
        "metrics.listen",
      ]) {
        expect(probs).toContain(s);
      }
      expect((e as ConfigError).code).toBe("INVALID_CONFIG");
    }
  });

  it("a named file must exist and parse; the default path is optional", async () => {
    await expect(loadConfig({ path: path.join(dir, "missing.yaml") })).rejects.toThrow(/cannot read file/);
    await expect(loadConfig({ path: file("bad.yaml", "nri: [unclosed") })).rejects.toThrow(/YAML/);
    await expect(loadConfig({ path: file("list.yaml", "- a\n- b\n") })).rejects.toThrow(
      /top level must be a mapping/,
    );
  });

  it("unknown flags are errors", () => {
    expect(() => parseFlags(["--nri-sokcet", "/x"])).toThrow(/unknown flag --nri-sokcet/);
    expect(() => parseFlags(["--log-level"])).toThrow(/needs a value/);
  });
});
