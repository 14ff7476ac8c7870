// The installer's decisions (src/installer) and its CLI (src/cli/install.ts) on temporary
// host roots: drop-in merging with the host's main config, the import check, bin_dir
// warnings, atomic placement, idempotence, restart strategies, flags and exit codes.
// The real containerd and the real verifier binary are exercised in e2e/installer.test.ts.
import { spawn } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse as parseToml } from "smol-toml";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { defaultConfig, validateConfig } from "../../src/config/agent.js";
import { installMain } from "../../src/cli/install.js";
import {
  BINDIR_PLUGIN,
  binDirWarnings,
  globToRegExp,
  type InstallError,
  importStatus,
  install,
  NRI_PLUGIN,
  parseDropinTimeout,
  parseMainConfig,
  renderDropin,
  restartContainerd,
  supportsRequiredPlugins,
} from "../../src/installer/index.js";

let root: string;
let fakeVerifier: string;
beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), "tollgate-installer-"));
  // Any ELF executable stands in for the ~135 MB SEA here.
  fakeVerifier = path.join(root, "verifier-src");
  copyFileSync("/bin/true", fakeVerifier);
  mkdirSync(path.join(root, "host"));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const host = (p = "") => path.join(root, "host", p);
const write = (p: string, text: string) => {
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, text);
};

describe("containerd drop-in", () => {
  const main = parseMainConfig(
    "/etc/containerd/config.toml",
    [
      "version = 3",
      'imports = ["conf.d/*.toml"]',
      `[plugins."${NRI_PLUGIN}"]`,
      "  disable = true",
      "  disable_connections = true",
      '  plugin_path = "/opt/nri/plugins"',
      '  plugin_request_timeout = "3s"',
      `[plugins."${BINDIR_PLUGIN}"]`,
      "  max_verifiers = 4",
    ].join("\n"),
  );

  it("carries the main config's keys for both plugins and sets only Tollgate's, reporting each override", () => {
    const r = renderDropin({ binDir: "/opt/v/bin", nriSocket: "/var/run/nri/nri.sock" }, main, ["hello"]);
    expect(r.text.startsWith("# hello\n")).toBe(true);
    const doc = parseToml(r.text) as { version: number; plugins: Record<string, Record<string, unknown>> };
    expect(doc.version).toBe(3);
    expect(doc.plugins[NRI_PLUGIN]).toEqual({
      disable: false,
      disable_connections: false,
      plugin_path: "/opt/nri/plugins",
      socket_path: "/var/run/nri/nri.sock",
      plugin_request_timeout: "3s",
      plugin_registration_timeout: "5s",
    });
    expect(doc.plugins[BINDIR_PLUGIN]).toEqual({
      bin_dir: "/opt/v/bin",
      max_verifiers: 4,
      per_verifier_timeout: "10s",
    });
    expect(r.overrides).toEqual([
      `${NRI_PLUGIN}.disable: /etc/containerd/config.toml has true, drop-in sets false`,
      `${NRI_PLUGIN}.disable_connections: /etc/containerd/config.toml has true, drop-in sets false`,
    ]);
    expect(r.maxVerifiers).toBe(4);
  });

  it("containerd >= 2.2: the agent becomes a required NRI plugin (default validator), tolerated by annotation", () => {
    expect(["2.2", "v2.2.0", "2.10.1", "3.0"].map(supportsRequiredPlugins)).toEqual([true, true, true, true]);
    expect(["2.1.9", "v2.0", "1.7.27", "", "x"].map(supportsRequiredPlugins)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
    const r = renderDropin(
      {
        binDir: "/b",
        nriSocket: "/s",
        requirePlugin: { name: "tollgate", tolerateAnnotation: "tollgate.dev/tolerate-missing-nri-plugin" },
      },
      main,
    );
    const doc = parseToml(r.text) as { plugins: Record<string, Record<string, unknown>> };
    expect(doc.plugins[NRI_PLUGIN]!.default_validator).toEqual({
      enable: true,
      required_plugins: ["tollgate"],
      tolerate_missing_plugins_annotation: "tollgate.dev/tolerate-missing-nri-plugin",
    });
    // Without it (containerd 2.1), no validator table is written.
    const plain = parseToml(renderDropin({ binDir: "/b", nriSocket: "/s" }, main).text) as {
      plugins: Record<string, Record<string, unknown>>;
    };
    expect(plain.plugins[NRI_PLUGIN]!.default_validator).toBeUndefined();
  });

  it("explicit settings win; bad durations are usage errors", () => {
    const r = renderDropin(
      {
        binDir: "/b",
        nriSocket: "/s",
        maxVerifiers: 7,
        nriRequestTimeout: "1500ms",
        perVerifierTimeout: "1m",
      },
      main,
    );
    const doc = parseToml(r.text) as { plugins: Record<string, Record<string, unknown>> };
    expect(doc.plugins[BINDIR_PLUGIN]!.max_verifiers).toBe(7);
    expect(doc.plugins[NRI_PLUGIN]!.plugin_request_timeout).toBe("1500ms");
    expect(r.overrides.some((o) => o.includes("plugin_request_timeout"))).toBe(true);
    expect(() =>
      renderDropin({ binDir: "/b", nriSocket: "/s", nriRequestTimeout: "2 seconds" }, main),
    ).toThrow(/not a Go duration/);
    expect(parseDropinTimeout("1m30s")).toBe(90_000);
    expect(parseDropinTimeout("-1s")).toBeUndefined();
  });

  it("import check: relative globs, absolute paths, missing main config, no match", () => {
    expect(importStatus(main, "/etc/containerd/conf.d/tollgate.toml")).toEqual({
      state: "imported",
      by: "conf.d/*.toml",
    });
    expect(importStatus(main, "/etc/containerd/conf.d/sub/tollgate.toml").state).toBe("not-imported");
    const abs = parseMainConfig("/etc/containerd/config.toml", 'imports = ["/etc/containerd/tollgate.toml"]');
    expect(importStatus(abs, "/etc/containerd/tollgate.toml").state).toBe("imported");
    const none = parseMainConfig("/etc/containerd/config.toml", "version = 3\n");
    const st = importStatus(none, "/etc/containerd/conf.d/tollgate.toml");
    expect(st.state).toBe("not-imported");
    expect(st.state !== "imported" && st.fix).toMatch(/imports = \["\/etc\/containerd\/conf\.d\/\*\.toml"\]/);
    expect(importStatus(parseMainConfig("/x/config.toml", undefined), "/x/conf.d/a.toml").state).toBe(
      "no-main-config",
    );
    expect(globToRegExp("/a/*.toml").test("/a/b/c.toml")).toBe(false);
    expect(globToRegExp("/a/[ab]?.toml").test("/a/bx.toml")).toBe(true);
  });

  it("a main config that is not TOML stops the install before anything is written", async () => {
    write(host("etc/containerd/config.toml"), "version = = 3\n");
    await expect(
      install({ hostRoot: host(), verifierBinary: fakeVerifier, agentConfig: defaultConfig() }),
    ).rejects.toMatchObject({ code: "BAD_CONTAINERD_CONFIG" });
    expect(existsSync(host("opt"))).toBe(false);
    expect(existsSync(host("etc/containerd/conf.d"))).toBe(false);
  });
});

describe("bin_dir", () => {
  it("warns when the verifier would be past max_verifiers, about non-executables and other verifiers", () => {
    const entries = [
      { name: "10-a", kind: "executable" as const },
      { name: "20-b", kind: "executable" as const },
      { name: "30-notes.txt", kind: "file" as const },
    ];
    const past = binDirWarnings(entries, "50-tollgate", 3, "/bin_dir");
    expect(past[0]).toMatch(/50-tollgate is entry 4 of 4 .* SKIPPED/);
    expect(past.join("\n")).toMatch(/30-notes.txt is a non-executable file: .*blocks EVERY pull/);
    expect(past.join("\n")).toMatch(/in this order: 10-a, 20-b, 50-tollgate/);
    const fits = binDirWarnings(entries, "05-tollgate", 3, "/bin_dir");
    expect(fits[0]).toMatch(/more than max_verifiers = 3: containerd skips the last 1/);
    expect(binDirWarnings([], "50-tollgate", -1, "/d")).toEqual([]);
  });
});

describe("install() on a temporary host root", () => {
  const cfg = () =>
    validateConfig({ api: { socket: "/run/tollgate/agent.sock" }, nri: { socket: "/var/run/nri/nri.sock" } });

  it("installs the binary 0755 by rename (nothing left in bin_dir), the verifier config and the drop-in", async () => {
    write(host("etc/containerd/config.toml"), 'version = 3\nimports = ["/etc/containerd/conf.d/*.toml"]\n');
    const r = await install({
      hostRoot: host(),
      verifierBinary: fakeVerifier,
      agentConfig: cfg(),
      version: "t",
    });
    const bin = host("opt/containerd/image-verifier/bin/50-tollgate");
    expect(statSync(bin).mode & 0o777).toBe(0o755);
    expect(readFileSync(bin).equals(readFileSync(fakeVerifier))).toBe(true);
    expect(readdirSync(host("opt/containerd/image-verifier/bin"))).toEqual(["50-tollgate"]);
    expect(readdirSync(host("opt/containerd/image-verifier"))).toEqual(["bin"]);
    expect(r.verifier).toMatchObject({
      hostPath: "/opt/containerd/image-verifier/bin/50-tollgate",
      changed: true,
    });
    // The verifier's config is the agent's, loadable by the same loader.
    const vc = host("etc/tollgate/agent.yaml");
    expect(statSync(vc).mode & 0o777).toBe(0o600);
    const back = validateConfig(parseYaml(readFileSync(vc, "utf8")));
    expect(back.api.socket).toBe("/run/tollgate/agent.sock");
    expect(back.pullVerifier.failurePolicy).toBe("Closed");
    const dropin = parseToml(readFileSync(host("etc/containerd/conf.d/tollgate.toml"), "utf8")) as {
      plugins: Record<string, Record<string, unknown>>;
    };
    expect(dropin.plugins[BINDIR_PLUGIN]!.bin_dir).toBe("/opt/containerd/image-verifier/bin");
    expect(dropin.plugins[NRI_PLUGIN]!.socket_path).toBe("/var/run/nri/nri.sock");
    expect(r.import).toEqual({ state: "imported", by: "/etc/containerd/conf.d/*.toml" });
    expect(r.restart).toMatchObject({ strategy: "none", done: false });
    expect(r.restart.message).toMatch(/systemctl restart containerd.service/);
    expect(r.warnings).toEqual([]);

    // Idempotent: a second run changes nothing and so needs no restart.
    const again = await install({
      hostRoot: host(),
      verifierBinary: fakeVerifier,
      agentConfig: cfg(),
      version: "t",
    });
    expect([again.verifier.changed, again.verifierConfig.changed, again.dropin.changed]).toEqual([
      false,
      false,
      false,
    ]);
    expect(again.restart.message).toMatch(/unchanged: no restart needed/);
  });

  it("warns when containerd will not read the drop-in, and when the verifier timeout exceeds containerd's", async () => {
    const c = cfg();
    c.pullVerifier.timeoutMs = 12_000;
    const r = await install({ hostRoot: host(), verifierBinary: fakeVerifier, agentConfig: c });
    expect(r.import.state).toBe("no-main-config");
    expect(r.warnings.join("\n")).toMatch(
      /containerd will not read \/etc\/containerd\/conf.d\/tollgate.toml/,
    );
    expect(r.warnings.join("\n")).toMatch(/not below per_verifier_timeout \(10s\)/);
  });

  it("refuses a verifier that is not a self-contained executable", async () => {
    const script = path.join(root, "verify.mjs");
    write(script, "#!/usr/bin/env node\n");
    chmodSync(script, 0o755);
    await expect(
      install({ hostRoot: host(), verifierBinary: script, agentConfig: cfg() }),
    ).rejects.toMatchObject({
      code: "BAD_VERIFIER_BINARY",
    });
    await expect(
      install({ hostRoot: host(), verifierBinary: path.join(root, "missing"), agentConfig: cfg() }),
    ).rejects.toMatchObject({ code: "BAD_VERIFIER_BINARY" });
  });

  it("--restart signal stops exactly the given pid; a failed signal is RESTART_FAILED", async () => {
    const child = spawn("sleep", ["600"], { stdio: "ignore" });
    const exited = new Promise((r) => child.once("exit", r));
    try {
      const r = await restartContainerd(
        { strategy: "signal", hostRoot: "/", containerdPid: child.pid! },
        true,
      );
      expect(r.done).toBe(true);
      await exited;
      expect(child.signalCode).toBe("SIGTERM");
    } finally {
      child.kill("SIGKILL");
    }
    await expect(
      restartContainerd({ strategy: "signal", hostRoot: "/", containerdPid: 2 ** 22 + 12345 }, true),
    ).rejects.toMatchObject({ code: "RESTART_FAILED" } satisfies Partial<InstallError>);
    // Nothing changed → nothing restarted, whatever the strategy.
    expect(
      await restartContainerd({ strategy: "signal", hostRoot: "/", containerdPid: 1 }, false),
    ).toMatchObject({
      done: false,
    });
  });
});

describe("tollgate install (CLI)", () => {
  async function cli(argv: string[]) {
    let out = "";
    let err = "";
    const code = await installMain(argv, {
      stdout: (s) => {
        out += s;
      },
      stderr: (s) => {
        err += s;
      },
      env: {},
      version: "test",
    });
    return { code, out, err };
  }

  it("--help prints usage with exit codes", async () => {
    const r = await cli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/usage: tollgate install --host-root DIR/);
    expect(r.out).toMatch(/Exit codes: 0 installed, 2 bad flags/);
  });

  it.each([
    [[], /--host-root is required/],
    [["--host-root"], /flag --host-root needs a value/],
    [["--host-root", "/x", "--bogus", "1"], /unknown flag --bogus/],
    [["--host-root", "/x", "--restart", "sometimes"], /--restart must be one of none, signal, systemctl/],
    [["--host-root", "/x", "--output", "xml"], /--output must be table or json/],
    [["--host-root", "/x", "--max-verifiers", "ten"], /--max-verifiers must be an integer/],
    [["--host-root", "/x", "--host-root", "/y"], /given twice/],
    [["stray"], /unexpected argument "stray"/],
  ])("bad flags %j → exit 2", async (argv, msg) => {
    const r = await cli(argv as string[]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(msg);
    expect(r.err).toMatch(/see tollgate install --help/);
  });

  it("a bad agent configuration file → exit 2 with the offending key", async () => {
    const bad = path.join(root, "agent.yaml");
    write(bad, "pullVerifier:\n  failurePolicy: Sometimes\n");
    const r = await cli(["--host-root", host(), "--agent-config", bad, "--verifier-binary", fakeVerifier]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/pullVerifier.failurePolicy: must be one of Closed, Open/);
    const missing = await cli(["--host-root", host(), "--agent-config", path.join(root, "nope.yaml")]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot read file/);
  });

  it("installs and reports (table and JSON); a script as verifier → exit 3", async () => {
    const agentCfg = path.join(root, "agent.yaml");
    write(agentCfg, "api:\n  socket: /run/tollgate/agent.sock\n");
    const base = ["--host-root", host(), "--agent-config", agentCfg, "--verifier-binary", fakeVerifier];
    const t = await cli(base);
    expect(t.code).toBe(0);
    expect(t.out).toMatch(/pull verifier +\/opt\/containerd\/image-verifier\/bin\/50-tollgate \(installed/);
    expect(t.out).toMatch(/imported by main +NO \(no-main-config\)/);
    expect(t.out).toMatch(/WARNING +containerd will not read/);
    const j = await cli([...base, "--output", "json", "--verifier-name", "60-tg"]);
    expect(j.code).toBe(0);
    const report = JSON.parse(j.out);
    expect(report.verifier.hostPath).toBe("/opt/containerd/image-verifier/bin/60-tg");
    expect(report.dropin.changed).toBe(false);
    expect(report.warnings.join("\n")).toMatch(/other verifiers .* 50-tollgate, 60-tg/);
    const script = path.join(root, "v.sh");
    write(script, "#!/bin/sh\n");
    const s = await cli(["--host-root", host(), "--agent-config", agentCfg, "--verifier-binary", script]);
    expect(s.code).toBe(3);
    expect(s.err).toMatch(/BAD_VERIFIER_BINARY: .* is not an ELF executable/);
  });
});
