// Token expiry and refresh under load: 50 concurrent verifications of distinct images in one
// private repository make one credential-plugin call and one registry token request; when
// the token expires, the next 50 make exactly one more token request (the plugin's answer
// is still cached); when the plugin's cacheDuration runs out, the plugin is asked once more.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compilePolicy, createEngine } from "../../../../src/engine/index.js";
import {
  buildCredentialResolver,
  parseCredentialProviderSpecs,
} from "../../../../src/engine/registry/credentials/index.js";
import { calls, writeKubeletConfig, writeKubeletPlugin } from "../../../support/credential-plugins.js";
import { type FakeRegistry, sha256, startFakeRegistry } from "../fake-registry.js";

let t = Date.parse("2026-01-01T00:00:00Z");
const now = () => t;
let reg: FakeRegistry;
let dir: string;
const PASSWORD = `pw-${randomBytes(8).toString("hex")}`;

beforeAll(async () => {
  reg = await startFakeRegistry({
    referrersApi: true,
    auth: { kind: "bearer", username: "u", password: PASSWORD, ttlSeconds: 300, now },
  });
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-token-refresh-"));
});
afterAll(async () => {
  await reg.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("token expiry and refresh under 50 concurrent verifications", () => {
  it("one plugin call and one token request per expiry", async () => {
    const binDir = path.join(dir, "bin");
    const logDir = path.join(dir, "log");
    writeKubeletPlugin(binDir, "registry-plugin", {
      logDir,
      response: JSON.stringify({
        apiVersion: "credentialprovider.kubelet.k8s.io/v1",
        kind: "CredentialProviderResponse",
        cacheKeyType: "Registry",
        cacheDuration: "10m",
        auth: { [reg.host]: { username: "u", password: PASSWORD } },
      }),
    });
    const config = writeKubeletConfig(path.join(dir, "config.yaml"), [
      { name: "registry-plugin", matchImages: [reg.host] },
    ]);
    const { specs } = parseCredentialProviderSpecs([
      { name: "kubelet", type: "kubelet", hosts: [reg.host], config, binDir },
    ]);
    const engine = createEngine({
      registry: { credentialResolver: buildCredentialResolver(specs, [], now), now },
      now: () => new Date(t),
    });
    const pem = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
      type: "spki",
      format: "pem",
    });
    const policy = await compilePolicy({
      apiVersion: "tollgate.dev/v1alpha1",
      kind: "ImagePolicy",
      metadata: { name: "p" },
      spec: { verifiers: [{ name: "c", cosign: { keys: [{ name: "k", pem: String(pem) }] } }] },
    });
    let seq = 0;
    const wave = () =>
      Promise.all(
        Array.from({ length: 50 }, () => {
          const digest = sha256(`image-${++seq}`);
          return engine.verify({ reference: `${reg.host}/team/app:v${seq}`, digest }, policy);
        }),
      );
    const check = (vs: Awaited<ReturnType<typeof wave>>) => {
      // Read with the credentials: no signature is a verdict, never an auth failure.
      for (const v of vs) expect(v, JSON.stringify(v.reasons)).toMatchObject({ outcome: "rejected" });
    };

    check(await wave());
    expect(calls(logDir)).toHaveLength(1);
    expect(reg.tokenRequests, JSON.stringify(reg.tokenRequests.map((r) => r.scope))).toHaveLength(1);

    t += 301_000; // the registry token expired; the plugin's answer (10m) has not
    check(await wave());
    expect(calls(logDir)).toHaveLength(1);
    expect(reg.tokenRequests).toHaveLength(2);

    t += 10 * 60_000; // both expired
    check(await wave());
    expect(calls(logDir)).toHaveLength(2);
    expect(reg.tokenRequests).toHaveLength(3);
    for (const r of reg.tokenRequests)
      expect(r.authorization).toBe(`Basic ${Buffer.from(`u:${PASSWORD}`).toString("base64")}`);
  }, 60_000);
});

describe("no or wrong credentials are the failure policy's call, and the reason says so", () => {
  it.each([
    ["no credentials", () => ({})],
    ["wrong credentials", () => ({ credentials: { [reg.host]: { username: "u", password: "not-it" } } })],
    [
      "a failing credential plugin",
      () => {
        const binDir = path.join(dir, "bin-fail");
        writeKubeletPlugin(binDir, "broken", {
          logDir: path.join(dir, "log-fail"),
          response: "",
          exitCode: 2,
          stderr: "metadata service unreachable",
        });
        const config = writeKubeletConfig(path.join(dir, "config-fail.yaml"), [
          { name: "broken", matchImages: [reg.host] },
        ]);
        const { specs } = parseCredentialProviderSpecs([
          { name: "kubelet", type: "kubelet", config, binDir },
        ]);
        return { credentialResolver: buildCredentialResolver(specs) };
      },
    ],
  ])("%s: Closed denies, Open allows, outcome failed, never 'no signature'", async (_n, registry) => {
    const engine = createEngine({ registry: registry() });
    const pem = String(
      generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }),
    );
    for (const failurePolicy of ["Closed", "Open"] as const) {
      const policy = await compilePolicy({
        apiVersion: "tollgate.dev/v1alpha1",
        kind: "ImagePolicy",
        metadata: { name: `p-${failurePolicy.toLowerCase()}` },
        spec: { failurePolicy, verifiers: [{ name: "c", cosign: { keys: [{ name: "k", pem }] } }] },
      });
      const v = await engine.verify(
        { reference: `${reg.host}/team/app:x`, digest: sha256(`auth-${_n}`) },
        policy,
      );
      expect(v).toMatchObject({
        outcome: "failed",
        allowed: failurePolicy === "Open",
        failure: { code: "REGISTRY_AUTH" },
      });
      expect(v.reasons.join(" ")).toMatch(/authentication( to \S+)? failed/);
      expect(v.reasons.join(" ")).not.toMatch(/no cosign signature|unsigned/);
    }
  });
});
