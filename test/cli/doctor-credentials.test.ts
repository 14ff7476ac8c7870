// `tollgate doctor`'s credential checks, on agent configurations that exhibit each finding.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, validateConfig } from "../../src/config/agent.js";
import { checkCredentials } from "../../src/cli/doctor-credentials.js";

const root = mkdtempSync(path.join(os.tmpdir(), "tollgate-doctor-creds-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function kubeletConfig(plugins: string[]): string {
  const f = path.join(root, `kcfg-${plugins.join("-")}.yaml`);
  writeFileSync(
    f,
    JSON.stringify({
      apiVersion: "kubelet.config.k8s.io/v1",
      kind: "CredentialProviderConfig",
      providers: plugins.map((name, i) => ({
        name,
        matchImages: [i === 0 ? "*.azurecr.io" : "*.dkr.ecr.*.amazonaws.com"],
        defaultCacheDuration: "1m",
        apiVersion: "credentialprovider.kubelet.k8s.io/v1",
      })),
    }),
  );
  return f;
}

function findings(registry: Record<string, unknown>, image?: string) {
  const out: Array<{ id: string; severity: string; message: string }> = [];
  checkCredentials(validateConfig({ registry }), image, (f) => out.push(f));
  return out;
}

describe("doctor: registry credential providers", () => {
  const bin = path.join(root, "bin");
  mkdirSync(bin, { recursive: true });
  writeFileSync(path.join(bin, "acr-plugin"), "#!/bin/sh\n");
  chmodSync(path.join(bin, "acr-plugin"), 0o755);
  writeFileSync(path.join(bin, "ecr-plugin"), "#!/bin/sh\n");
  chmodSync(path.join(bin, "ecr-plugin"), 0o644);

  it("plugins missing or not executable are errors; a good setup says who serves what", () => {
    const bad = findings({
      credentialProviders: [
        {
          name: "k",
          type: "kubelet",
          hosts: ["*.azurecr.io"],
          config: kubeletConfig(["acr-plugin", "ecr-plugin", "gone"]),
          binDir: bin,
        },
      ],
    });
    expect(bad.filter((f) => f.severity === "error").map((f) => f.message)).toEqual([
      `credential provider k: plugin ${bin}/ecr-plugin is not executable`,
      `credential provider k: plugin ${bin}/gone does not exist`,
    ]);
    const good = findings(
      {
        credentialProviders: [
          {
            name: "k",
            type: "kubelet",
            hosts: ["*.azurecr.io"],
            config: kubeletConfig(["acr-plugin"]),
            binDir: bin,
          },
          { name: "rest", type: "anonymous" },
        ],
      },
      "team.azurecr.io/app:v1",
    );
    expect(good).toEqual([
      {
        id: "credentials.ok",
        check: "credentials",
        severity: "ok",
        message: expect.stringContaining("k (kubelet; *.azurecr.io); rest (anonymous; every other host)"),
      },
      {
        id: "credentials.image",
        check: "credentials",
        severity: "info",
        message:
          "team.azurecr.io/app:v1 (registry team.azurecr.io) is served by credential provider k (kubelet); kubelet plugins whose matchImages select it: acr-plugin",
      },
    ]);
    expect(findings({}, "busybox")[0]?.message).toBe(
      "busybox (registry docker.io) is served by no credential provider: requests are anonymous",
    );
  });

  it("a broken kubelet config and bad ordering are errors; bad agent config keys are config errors", () => {
    const f = path.join(root, "broken.yaml");
    writeFileSync(f, "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders: []\n");
    expect(
      findings({ credentialProviders: [{ name: "k", type: "kubelet", config: f, binDir: bin }] })[0],
    ).toMatchObject({
      id: "credentials.config",
      severity: "error",
      message: expect.stringContaining("providers must be a non-empty list"),
    });
    expect(
      findings({
        credentialProviders: [
          { name: "a", type: "anonymous", hosts: ["*.example.com"] },
          { name: "b", type: "anonymous", hosts: ["x.example.com"] },
        ],
      })[0]?.message,
    ).toMatch(/provider b: host pattern "x.example.com" can never match/);
    expect(() =>
      validateConfig({ registry: { credentialProviders: [{ name: "x", type: "kubelet", hosts: ["a/b"] }] } }),
    ).toThrow(ConfigError);
  });
});
