// Registry credential providers: host-pattern rules, kubelet's image globs, the kubelet exec
// plugin protocol and the docker credential helper protocol (real scripts), and the shared
// cache (expiry, scope, single flight, negative caching).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { imageMatches } from "../../../../src/engine/registry/credentials/glob.js";
import { hostMatches, orderingProblems } from "../../../../src/engine/registry/credentials/host-pattern.js";
import {
  buildCredentialResolver,
  parseCredentialProviderConfig,
  parseCredentialProviderSpecs,
  parseCacheDuration,
  parseHostPattern,
} from "../../../../src/engine/registry/credentials/index.js";
import {
  calls,
  lastArgsAndEnv,
  writeDockerHelper,
  writeKubeletConfig,
  writeKubeletPlugin,
} from "../../../support/credential-plugins.js";

const root = mkdtempSync(path.join(os.tmpdir(), "tollgate-creds-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => path.join(root, `t${++n}`);

describe("host patterns", () => {
  it("rejects schemes, paths, partial globs, bad ports, empty labels and bare wildcards", () => {
    for (const [p, why] of [
      ["https://r.example.com", /scheme/],
      ["r.example.com/team", /path/],
      ["r*.example.com", /whole label/],
      ["r.example.com:99999", /port/],
      ["r..example.com", /empty label/],
      ["*.*", /only wildcards/],
      ["", /empty/],
      ["bad_label.example.com", /invalid label/],
    ] as const) {
      expect(() => parseHostPattern(p), p).toThrow(
        expect.objectContaining({ code: "INVALID_CONFIG", message: expect.stringMatching(why) }),
      );
    }
  });

  it("'*' is one whole label; ports must match exactly (absent matches only absent)", () => {
    const p = parseHostPattern("*.azurecr.io");
    expect(hostMatches(p, "team.azurecr.io")).toBe(true);
    expect(hostMatches(p, "azurecr.io")).toBe(false);
    expect(hostMatches(p, "a.b.azurecr.io")).toBe(false);
    expect(hostMatches(p, "team.azurecr.io:443")).toBe(false);
    expect(hostMatches(parseHostPattern("127.0.0.1:5000"), "127.0.0.1:5000")).toBe(true);
    expect(hostMatches(parseHostPattern("127.0.0.1:5000"), "127.0.0.1:5001")).toBe(false);
    expect(hostMatches(parseHostPattern("Registry.Example.com"), "registry.example.COM")).toBe(true);
  });

  it("first match wins: specific before general is fine; duplicates, hidden rules and partial overlaps are errors", () => {
    const r = (owner: string, t: string) => ({ owner, pattern: parseHostPattern(t) });
    expect(orderingProblems([r("a", "x.example.com"), r("b", "*.example.com")])).toEqual([]);
    expect(orderingProblems([r("a", "*.example.com"), r("b", "x.example.com")])[0]).toMatch(
      /b: .*can never match.*a's "\*\.example\.com"/,
    );
    expect(orderingProblems([r("a", "x.example.com"), r("b", "x.example.com")])[0]).toMatch(
      /already used by a/,
    );
    expect(orderingProblems([r("a", "*.b.com"), r("b", "a.*.com")])[0]).toMatch(/partly overlaps/);
    expect(orderingProblems([r("a", "*.b.com"), r("b", "*.b.com:5000")])).toEqual([]);
  });
});

describe("kubelet image globs (URLsMatch)", () => {
  it.each([
    ["*.kubernetes.io", "prefix.kubernetes.io", true],
    ["*.kubernetes.io", "kubernetes.io", false],
    ["*.kubernetes.io", "a.b.kubernetes.io", false],
    ["prefix.*.io", "prefix.kubernetes.io", true],
    ["*-good.kubernetes.io", "prefix-good.kubernetes.io", true],
    ["*-good.kubernetes.io", "prefix-bad.kubernetes.io", false],
    ["*.*.amazonaws.com", "123.dkr.ecr.amazonaws.com", false],
    ["*.*.*.amazonaws.com", "123.dkr.ecr.amazonaws.com", true],
    ["*.dkr.ecr.*.amazonaws.com", "123.dkr.ecr.eu-west-1.amazonaws.com/app", true],
    ["registry.io:8080/path", "registry.io:8080/path/image", true],
    ["registry.io:8080/path", "registry.io:8080/other/image", false],
    ["registry.io:8080", "registry.io/image", false],
    ["registry.io", "registry.io:5000/image", false],
    ["reg[0-9].io", "reg7.io/x", true],
    ["reg?.io", "reg77.io/x", false],
  ])("%s vs %s → %s", (pattern, image, want) => {
    expect(imageMatches(pattern, image)).toBe(want);
  });
});

describe("Go durations", () => {
  it("parses the forms kubelet configs use and rejects the rest", () => {
    expect(parseCacheDuration("0s")).toBe(0);
    expect(parseCacheDuration("0")).toBe(0);
    expect(parseCacheDuration("5m")).toBe(300_000);
    expect(parseCacheDuration("1h30m")).toBe(5_400_000);
    expect(parseCacheDuration("12h0m0s")).toBe(43_200_000);
    expect(parseCacheDuration("1.5s")).toBe(1500);
    expect(parseCacheDuration("250ms")).toBe(250);
    for (const bad of ["", "5", "5 m", "m", "1d", "-1s", "1h junk"])
      expect(() => parseCacheDuration(bad), bad).toThrow();
  });
});

describe("CredentialProviderConfig", () => {
  const good = `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages: ["*.dkr.ecr.*.amazonaws.com"]
    defaultCacheDuration: "12h"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [get-credentials]
    env:
      - name: AWS_PROFILE
        value: node
`;
  it("reads what kubelet reads", () => {
    const [p] = parseCredentialProviderConfig(good, "cfg");
    expect(p).toEqual({
      name: "ecr-credential-provider",
      matchImages: ["*.dkr.ecr.*.amazonaws.com"],
      defaultCacheMs: 43_200_000,
      apiVersion: "credentialprovider.kubelet.k8s.io/v1",
      args: ["get-credentials"],
      env: [{ name: "AWS_PROFILE", value: "node" }],
    });
  });

  it("names every problem at once", () => {
    const bad = `apiVersion: kubelet.config.k8s.io/v9
kind: Other
providers:
  - name: ../evil
    matchImages: []
    apiVersion: credentialprovider.kubelet.k8s.io/v0
  - name: dup
    matchImages: ["reg[.io"]
    defaultCacheDuration: "forever"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
  - name: dup
    matchImages: ["x.io"]
    defaultCacheDuration: "1m"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    tokenAttributes: {serviceAccountTokenAudience: x}
`;
    let msg = "";
    try {
      parseCredentialProviderConfig(bad, "cfg.yaml");
    } catch (e) {
      expect(e).toMatchObject({ code: "INVALID_CONFIG" });
      msg = (e as Error).message;
    }
    for (const frag of [
      "apiVersion must be",
      "kind must be",
      "providers[0].name",
      "providers[0].matchImages: must be a non-empty list",
      "providers[0].defaultCacheDuration: required",
      "providers[0].apiVersion",
      'providers[1].matchImages[0]: "reg[.io"',
      "providers[1].defaultCacheDuration: invalid duration",
      "providers[2].name: duplicate provider dup",
      "providers[2].tokenAttributes",
    ])
      expect(msg).toContain(frag);
    expect(() => parseCredentialProviderConfig("{{{", "x")).toThrow(/not valid YAML/);
  });
});

function kubeletSetup(
  response: string,
  extra: Record<string, unknown> = {},
  plugin: Parameters<typeof writeKubeletPlugin>[2] extends infer O ? Partial<O> : never = {},
) {
  const dir = fresh();
  const binDir = path.join(dir, "bin");
  const logDir = path.join(dir, "log");
  writeKubeletPlugin(binDir, "test-plugin", { response, logDir, ...plugin });
  const config = writeKubeletConfig(path.join(dir, "config.yaml"), [
    {
      name: "test-plugin",
      matchImages: ["*.example.com", "127.0.0.1:5000"],
      defaultCacheDuration: "10m",
      args: ["--mode", "test"],
      env: [{ name: "PLUGIN_ENV_PROBE", value: "probe-value" }],
      ...extra,
    },
  ]);
  let t = 1_000_000;
  const clock = { now: () => t, advance: (ms: number) => (t += ms) };
  const { specs, problems } = parseCredentialProviderSpecs([
    {
      name: "kubelet",
      type: "kubelet",
      config,
      binDir,
      timeoutMs: 2000,
      maxOutputBytes: 4096,
      negativeCacheSeconds: 5,
    },
  ]);
  expect(problems).toEqual([]);
  const resolver = buildCredentialResolver(specs, [], clock.now);
  return { resolver, logDir, clock };
}

const resp = (o: Record<string, unknown>) =>
  JSON.stringify({
    apiVersion: "credentialprovider.kubelet.k8s.io/v1",
    kind: "CredentialProviderResponse",
    ...o,
  });

describe("kubelet credential provider plugins", () => {
  it("sends the request kubelet sends, with args and env, and uses the matching auth entry", async () => {
    const { resolver, logDir } = kubeletSetup(
      resp({
        cacheKeyType: "Registry",
        auth: {
          "*.example.com": { username: "wide", password: "p1" },
          "r.example.com/team": { username: "narrow", password: "p2" },
          "other.io": { username: "no", password: "no" },
        },
      }),
    );
    const cred = await resolver.credentialFor({ host: "r.example.com", image: "r.example.com/team/app" });
    // Reverse lexical key order: "r.example.com/team" before "*.example.com".
    expect(cred).toEqual({ username: "narrow", password: "p2" });
    const [stdin] = calls(logDir);
    expect(JSON.parse(stdin!)).toEqual({
      apiVersion: "credentialprovider.kubelet.k8s.io/v1",
      kind: "CredentialProviderRequest",
      image: "r.example.com/team/app",
    });
    expect(lastArgsAndEnv(logDir)).toEqual({ args: ["--mode", "test"], env: "probe-value" });
  });

  it("honours cacheKeyType and cacheDuration (else defaultCacheDuration)", async () => {
    const { resolver, logDir, clock } = kubeletSetup(
      resp({
        cacheKeyType: "Registry",
        cacheDuration: "1m",
        auth: { "*.example.com": { username: "u", password: "p" } },
      }),
    );
    await resolver.credentialFor({ host: "r.example.com", image: "r.example.com/a" });
    await resolver.credentialFor({ host: "r.example.com", image: "r.example.com/b" });
    expect(calls(logDir)).toHaveLength(1); // Registry: shared by every image of the host
    await resolver.credentialFor({ host: "s.example.com", image: "s.example.com/a" });
    expect(calls(logDir)).toHaveLength(2); // another registry
    clock.advance(61_000);
    await resolver.credentialFor({ host: "r.example.com", image: "r.example.com/a" });
    expect(calls(logDir)).toHaveLength(3); // expired

    const img = kubeletSetup(
      resp({ cacheKeyType: "Image", auth: { "*.example.com": { username: "u", password: "p" } } }),
    );
    await img.resolver.credentialFor({ host: "r.example.com", image: "r.example.com/a" });
    await img.resolver.credentialFor({ host: "r.example.com", image: "r.example.com/a" });
    await img.resolver.credentialFor({ host: "r.example.com", image: "r.example.com/b" });
    expect(calls(img.logDir)).toHaveLength(2);
    img.clock.advance(9 * 60_000); // defaultCacheDuration 10m still holds
    await img.resolver.credentialFor({ host: "r.example.com", image: "r.example.com/a" });
    expect(calls(img.logDir)).toHaveLength(2);

    const none = kubeletSetup(resp({ cacheKeyType: "Global", cacheDuration: "0s", auth: {} }));
    expect(
      await none.resolver.credentialFor({ host: "r.example.com", image: "r.example.com/a" }),
    ).toBeUndefined();
    await none.resolver.credentialFor({ host: "r.example.com", image: "r.example.com/a" });
    expect(calls(none.logDir)).toHaveLength(2); // 0s: not cached
  });

  it("images its matchImages do not cover get no plugin call (anonymous)", async () => {
    const { resolver, logDir } = kubeletSetup(resp({ cacheKeyType: "Global", auth: {} }));
    expect(
      await resolver.credentialFor({ host: "docker.io", image: "docker.io/library/busybox" }),
    ).toBeUndefined();
    expect(calls(logDir)).toHaveLength(0);
  });

  it("50 concurrent requests run the plugin once (single flight)", async () => {
    const { resolver, logDir } = kubeletSetup(
      resp({ cacheKeyType: "Registry", auth: { "*.example.com": { username: "u", password: "p" } } }),
      {},
      { sleepSeconds: 1 },
    );
    const all = await Promise.all(
      Array.from({ length: 50 }, () =>
        resolver.credentialFor({ host: "r.example.com", image: "r.example.com/a" }),
      ),
    );
    expect(all.every((c) => c?.username === "u")).toBe(true);
    expect(calls(logDir)).toHaveLength(1);
  });

  it.each([
    [
      "wrong apiVersion",
      {
        response: JSON.stringify({
          apiVersion: "credentialprovider.kubelet.k8s.io/v1beta1",
          kind: "CredentialProviderResponse",
          cacheKeyType: "Image",
        }),
      },
      /apiVersion/,
    ],
    [
      "wrong kind",
      {
        response: JSON.stringify({
          apiVersion: "credentialprovider.kubelet.k8s.io/v1",
          kind: "Nope",
          cacheKeyType: "Image",
        }),
      },
      /kind "Nope"/,
    ],
    ["bad cacheKeyType", { response: resp({ cacheKeyType: "Node" }) }, /cacheKeyType/],
    [
      "bad cacheDuration",
      { response: resp({ cacheKeyType: "Image", cacheDuration: "soon" }) },
      /cacheDuration/,
    ],
    ["not JSON", { response: "hello" }, /not JSON/],
    [
      "exit status",
      { response: "", exitCode: 3, stderr: "no instance metadata" },
      /exit status 3\): no instance metadata/,
    ],
    [
      "timeout",
      { response: resp({ cacheKeyType: "Image" }), sleepSeconds: 5 },
      /did not answer within 2000 ms/,
    ],
    ["too much output", { response: "x".repeat(5000) }, /more than 4096 bytes/],
  ])(
    "%s is a typed REGISTRY_AUTH error, remembered for negativeCacheSeconds",
    async (_n, plugin, msg) => {
      const { resolver, logDir, clock } = kubeletSetup("", {}, plugin);
      const req = { host: "r.example.com", image: "r.example.com/a" };
      await expect(resolver.credentialFor(req)).rejects.toMatchObject({
        code: "REGISTRY_AUTH",
        message: expect.stringMatching(msg),
      });
      await expect(resolver.credentialFor(req)).rejects.toMatchObject({ code: "REGISTRY_AUTH" });
      expect(calls(logDir)).toHaveLength(1);
      clock.advance(6_000);
      await expect(resolver.credentialFor(req)).rejects.toMatchObject({ code: "REGISTRY_AUTH" });
      expect(calls(logDir)).toHaveLength(2);
      const st = resolver.status()[0]!;
      expect(st).toMatchObject({ name: "kubelet", failures: 2, calls: 2 });
      expect(st.lastError?.message).toMatch(msg);
    },
    20_000,
  );

  it("a missing plugin binary and a missing config file are clear errors", async () => {
    const { resolver } = kubeletSetup(resp({ cacheKeyType: "Image" }), { name: "absent-plugin" });
    await expect(
      resolver.credentialFor({ host: "r.example.com", image: "r.example.com/a" }),
    ).rejects.toMatchObject({
      code: "REGISTRY_AUTH",
      message: expect.stringMatching(/absent-plugin does not exist/),
    });
    expect(resolver.providers()[0]!.check!()).toEqual([
      expect.stringMatching(/absent-plugin does not exist/),
    ]);
    const { specs } = parseCredentialProviderSpecs([
      { name: "k", type: "kubelet", config: "/nonexistent.yaml", binDir: "/x" },
    ]);
    expect(() => buildCredentialResolver(specs)).toThrow(/nonexistent.yaml does not exist/);
  });
});

describe("docker config files with credential helpers", () => {
  function setup(config: object) {
    const dir = fresh();
    const bin = path.join(dir, "bin");
    const logDir = path.join(dir, "log");
    writeDockerHelper(
      bin,
      "teststore",
      { "r.example.com": ["alice", "s3cret-store"], "https://index.docker.io/v1/": ["hub", "hubpass"] },
      logDir,
    );
    writeDockerHelper(bin, "acr", { "team.azurecr.io": ["<token>", "refresh-tok"] }, path.join(dir, "log2"));
    const file = path.join(dir, "config.json");
    writeFileSync(file, JSON.stringify(config));
    const { specs, problems } = parseCredentialProviderSpecs([
      {
        name: "docker",
        type: "dockerConfig",
        files: [path.join(dir, "missing.json"), file],
        helperDirs: [bin],
      },
    ]);
    expect(problems).toEqual([]);
    return { resolver: buildCredentialResolver(specs), logDir };
  }

  it("credHelpers per host, then credsStore, then auths — docker's order", async () => {
    const b64 = Buffer.from("bob:filepass").toString("base64");
    const { resolver, logDir } = setup({
      credsStore: "teststore",
      credHelpers: { "team.azurecr.io": "acr" },
      auths: { "plain.example.com": { auth: b64 } },
    });
    expect(await resolver.credentialFor({ host: "team.azurecr.io", image: "team.azurecr.io/app" })).toEqual({
      identityToken: "refresh-tok",
    });
    expect(await resolver.credentialFor({ host: "r.example.com", image: "r.example.com/app" })).toEqual({
      username: "alice",
      password: "s3cret-store",
    });
    expect(await resolver.credentialFor({ host: "docker.io", image: "docker.io/library/x" })).toEqual({
      username: "hub",
      password: "hubpass",
    });
    expect(calls(logDir)).toContain("https://index.docker.io/v1/");
    // With a credsStore, docker keeps every credential there: "not found" is anonymous.
    expect(
      await resolver.credentialFor({ host: "plain.example.com", image: "plain.example.com/x" }),
    ).toBeUndefined();
  });

  it("auths alone, and a helper that is not installed", async () => {
    const b64 = Buffer.from("bob:filepass").toString("base64");
    const { resolver } = setup({
      credHelpers: { "gone.example.com": "absent" },
      auths: { "https://plain.example.com/v1/": { auth: b64 } },
    });
    expect(await resolver.credentialFor({ host: "plain.example.com", image: "plain.example.com/x" })).toEqual(
      { username: "bob", password: "filepass" },
    );
    await expect(
      resolver.credentialFor({ host: "gone.example.com", image: "gone.example.com/x" }),
    ).rejects.toMatchObject({
      code: "REGISTRY_AUTH",
      message: expect.stringMatching(/docker-credential-absent not found/),
    });
    expect(resolver.providers()[0]!.check!()).toEqual([
      expect.stringMatching(/docker-credential-absent not found/),
    ]);
  });
});

describe("agent configuration of providers", () => {
  it("reports every problem with its path", () => {
    const { problems } = parseCredentialProviderSpecs([
      { name: "a", type: "magic" },
      { name: "b", type: "kubelet", hosts: ["https://x.io"], binDir: "/x", extra: 1 },
      { type: "dockerConfig", files: [], timeoutMs: 5 },
      "nope",
    ]);
    expect(problems).toEqual([
      "registry.credentialProviders[0].type: must be one of dockerConfig, kubelet, azure, anonymous",
      "registry.credentialProviders[1].extra: unknown key for type kubelet",
      'registry.credentialProviders[1].hosts: host pattern "https://x.io" must not have a scheme (write the host only)',
      "registry.credentialProviders[1].config: must be a non-empty string",
      "registry.credentialProviders[2].name: must be a non-empty string",
      "registry.credentialProviders[2].timeoutMs: must be an integer between 100 and 120000",
      "registry.credentialProviders[2].files: must be a non-empty list of non-empty strings",
      "registry.credentialProviders[3]: must be a mapping",
    ]);
  });

  it("first match wins; a catch-all must be last; overlaps are refused at build time", async () => {
    const mk = (list: unknown[]) => buildCredentialResolver(parseCredentialProviderSpecs(list).specs);
    const r = mk([
      { name: "exact", type: "anonymous", hosts: ["a.example.com"] },
      { name: "wild", type: "anonymous", hosts: ["*.example.com"] },
      { name: "rest", type: "anonymous" },
    ]);
    expect(r.ruleFor("a.example.com")?.provider.name).toBe("exact");
    expect(r.ruleFor("b.example.com")?.provider.name).toBe("wild");
    expect(r.ruleFor("docker.io")?.provider.name).toBe("rest");
    expect(() =>
      mk([
        { name: "rest", type: "anonymous" },
        { name: "x", type: "anonymous", hosts: ["a.io"] },
      ]),
    ).toThrow(/must be the last/);
    expect(() =>
      mk([
        { name: "wild", type: "anonymous", hosts: ["*.example.com"] },
        { name: "exact", type: "anonymous", hosts: ["a.example.com"] },
      ]),
    ).toThrow(/provider exact: host pattern "a.example.com" can never match/);
    expect(() =>
      mk([
        { name: "x", type: "anonymous", hosts: ["a.io"] },
        { name: "x", type: "anonymous", hosts: ["b.io"] },
      ]),
    ).toThrow(/used twice/);
  });
});
