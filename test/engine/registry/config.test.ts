// Unit tests: hosts.toml, Docker config files, WWW-Authenticate, Link headers.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseTokenResponse, parseWwwAuthenticate } from "../../../src/engine/registry/auth.js";
import { parseNextLink, referrersTagFor } from "../../../src/engine/registry/client.js";
import {
  authKeyToHost,
  loadDockerConfigs,
  parseDockerConfig,
} from "../../../src/engine/registry/dockerconfig.js";
import {
  defaultEndpoint,
  hostDirCandidates,
  loadHostEndpoints,
  parseHostsToml,
} from "../../../src/engine/registry/hosts.js";

const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("hosts.toml", () => {
  it("mirrors in file order, then server; capabilities, ca, client, skip_verify, plain http", () => {
    const eps = parseHostsToml(
      `
server = "https://registry-1.docker.io"

[host."http://127.0.0.1:5001"]
  capabilities = ["pull"]

[host."https://mirror.example.com/base"]
  capabilities = ["pull", "resolve"]
  ca = "ca.crt"
  client = [["client.crt", "client.key"]]
  skip_verify = false

[host."https://raw.example.com/api/v2/"]
  override_path = true
  client = "/abs/combined.pem"
  header = { X-Team = "blue", X-Multi = ["a", "b"] }
`,
      "docker.io",
      "/etc/containerd/certs.d/docker.io",
    );
    expect(eps.map((e) => `${e.scheme}://${e.host}${e.path}`)).toEqual([
      "http://127.0.0.1:5001/v2",
      "https://mirror.example.com/base/v2",
      "https://raw.example.com/api/v2",
      "https://registry-1.docker.io/v2",
    ]);
    expect([...(eps[0]?.capabilities ?? [])]).toEqual(["pull"]);
    expect([...(eps[1]?.capabilities ?? [])].sort()).toEqual(["pull", "resolve"]);
    expect(eps[1]?.tlsFiles).toEqual({
      ca: ["/etc/containerd/certs.d/docker.io/ca.crt"],
      client: [
        ["/etc/containerd/certs.d/docker.io/client.crt", "/etc/containerd/certs.d/docker.io/client.key"],
      ],
      skipVerify: false,
    });
    expect(eps[2]?.tlsFiles?.client).toEqual([["/abs/combined.pem", ""]]);
    expect(eps[2]?.header).toEqual({ "X-Team": ["blue"], "X-Multi": ["a", "b"] });
    expect(eps.map((e) => e.mirror)).toEqual([true, true, true, false]);
    expect([...(eps[3]?.capabilities ?? [])].sort()).toEqual(["pull", "push", "referrers", "resolve"]);
  });

  it("without server, the registry's default endpoint comes last with top-level settings", () => {
    const eps = parseHostsToml(
      `ca = ["a.pem", "/b.pem"]\n[host."https://m.example"]\n`,
      "reg.example:8443",
      "/d",
    );
    expect(eps.map((e) => `${e.scheme}://${e.host}${e.path}`)).toEqual([
      "https://m.example/v2",
      "https://reg.example:8443/v2",
    ]);
    expect(eps[1]?.tlsFiles?.ca).toEqual(["/d/a.pem", "/b.pem"]);
    expect(eps[1]?.mirror).toBe(false);
  });

  it("rejects invalid files with INVALID_CONFIG", () => {
    for (const bad of [
      "server = ",
      `server = 5`,
      `[host."https://m"]\ncapabilities = ["pull", "fly"]`,
      `[host."https://m"]\nca = 3`,
      `[host."https://m"]\nclient = [["one"]]`,
      `[host."ftp://m"]\n`,
      `skip_verify = "yes"`,
    ]) {
      expect(() => parseHostsToml(bad, "r.io", "/d"), bad).toThrow(
        expect.objectContaining({ code: "INVALID_CONFIG" }),
      );
    }
  });

  it("defaults like containerd: docker.io → registry-1, loopback → http, others → https", () => {
    expect(defaultEndpoint("docker.io")).toMatchObject({
      scheme: "https",
      host: "registry-1.docker.io",
      path: "/v2",
    });
    expect(defaultEndpoint("127.0.0.1:5000")).toMatchObject({ scheme: "http", host: "127.0.0.1:5000" });
    expect(defaultEndpoint("localhost:5000")).toMatchObject({ scheme: "http" });
    expect(defaultEndpoint("[::1]:5000")).toMatchObject({ scheme: "http" });
    expect(defaultEndpoint("localhost")).toMatchObject({ scheme: "https", tlsFiles: { skipVerify: true } });
    expect(defaultEndpoint("ghcr.io")).toMatchObject({ scheme: "https", host: "ghcr.io" });
    expect(defaultEndpoint("10.0.0.1:5000")).toMatchObject({ scheme: "https" });
  });

  it("looks up host_port_, host:port, then _default under the certs.d dir", () => {
    expect(hostDirCandidates("/c", "reg:5000")).toEqual(["/c/reg_5000_", "/c/reg:5000", "/c/_default"]);
    const root = mkdtempSync(path.join(os.tmpdir(), "tollgate-certsd-"));
    mkdirSync(path.join(root, "_default"));
    writeFileSync(
      path.join(root, "_default", "hosts.toml"),
      `[host."http://127.0.0.1:9"]\ncapabilities=["pull"]\n`,
    );
    mkdirSync(path.join(root, "reg.example_5000_"));
    writeFileSync(path.join(root, "reg.example_5000_", "hosts.toml"), `server = "http://reg.example:5000"\n`);
    expect(loadHostEndpoints(root, "reg.example:5000").map((e) => e.scheme)).toEqual(["http"]);
    const other = loadHostEndpoints(root, "other.example");
    expect(other.map((e) => `${e.scheme}://${e.host}`)).toEqual([
      "http://127.0.0.1:9",
      "https://other.example",
    ]);
    expect(loadHostEndpoints(undefined, "x.io")).toEqual([defaultEndpoint("x.io")]);
    expect(loadHostEndpoints(path.join(root, "nope"), "x.io")).toEqual([defaultEndpoint("x.io")]);
  });
});

describe("Docker config files", () => {
  it("reads auth, username/password and identitytoken; normalises keys", () => {
    const creds = parseDockerConfig(
      JSON.stringify({
        auths: {
          "https://index.docker.io/v1/": { auth: b64("hubuser:hub:pw") },
          "ghcr.io": { username: "u", password: "p" },
          "https://registry.example.com:5000/v2/": { auth: b64("x:"), identitytoken: "refresh-me" },
          "empty.example": {},
        },
        credsStore: "desktop",
      }),
    );
    expect(creds.get("docker.io")).toEqual({ username: "hubuser", password: "hub:pw" });
    expect(creds.get("ghcr.io")).toEqual({ username: "u", password: "p" });
    expect(creds.get("registry.example.com:5000")).toEqual({
      username: "x",
      password: "",
      identityToken: "refresh-me",
    });
    expect(creds.has("empty.example")).toBe(false);
    expect(authKeyToHost("http://LOCALHOST:5000")).toBe("localhost:5000");
  });

  it("malformed input is INVALID_CONFIG; missing files are skipped; earlier files win", () => {
    for (const bad of [
      "{",
      "[]",
      `{"auths": 3}`,
      JSON.stringify({ auths: { r: { auth: b64("nocolon") } } }),
    ]) {
      expect(() => parseDockerConfig(bad), bad).toThrow(expect.objectContaining({ code: "INVALID_CONFIG" }));
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-dcfg-"));
    const a = path.join(dir, "a.json");
    const b = path.join(dir, "b.json");
    writeFileSync(a, JSON.stringify({ auths: { "r.io": { auth: b64("first:1") } } }));
    writeFileSync(
      b,
      JSON.stringify({ auths: { "r.io": { auth: b64("second:2") }, "s.io": { auth: b64("s:3") } } }),
    );
    const m = loadDockerConfigs([path.join(dir, "missing.json"), a, b]);
    expect(m.get("r.io")?.username).toBe("first");
    expect(m.get("s.io")?.username).toBe("s");
    writeFileSync(a, "not json");
    expect(() => loadDockerConfigs([a])).toThrow(expect.objectContaining({ code: "INVALID_CONFIG" }));
  });
});

describe("WWW-Authenticate and tokens", () => {
  it("parses distribution challenges", () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
      ),
    ).toEqual([
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:library/busybox:pull",
        },
      },
    ]);
    expect(parseWwwAuthenticate('Basic realm="Registry Realm", Bearer realm="r",scope="a b"')).toEqual([
      { scheme: "basic", params: { realm: "Registry Realm" } },
      { scheme: "bearer", params: { realm: "r", scope: "a b" } },
    ]);
    expect(parseWwwAuthenticate('Bearer realm="with \\"escaped\\" quote"')[0]?.params.realm).toBe(
      'with "escaped" quote',
    );
  });

  it("rejects malformed challenges with REGISTRY_AUTH", () => {
    for (const bad of ['Bearer realm="unterminated', "", ",,,", '="x"', "x".repeat(9000)]) {
      expect(() => parseWwwAuthenticate(bad), bad).toThrow(
        expect.objectContaining({ code: "REGISTRY_AUTH" }),
      );
    }
  });

  it("token responses: token/access_token, minimum 60 s lifetime, sane issued_at", () => {
    const now = Date.parse("2025-01-01T00:00:00Z");
    expect(
      parseTokenResponse(Buffer.from(JSON.stringify({ token: "t", expires_in: 300 })), now, "r"),
    ).toEqual({
      token: "t",
      expiresAt: now + 300_000,
    });
    expect(
      parseTokenResponse(Buffer.from(JSON.stringify({ access_token: "a", expires_in: 5 })), now, "r")
        .expiresAt,
    ).toBe(now + 60_000);
    const future = new Date(now + 3600_000).toISOString();
    expect(
      parseTokenResponse(Buffer.from(JSON.stringify({ token: "t", issued_at: future })), now, "r").expiresAt,
    ).toBe(now + 60_000);
    for (const bad of ["nope", "{}", JSON.stringify({ token: "" }), "null"]) {
      expect(() => parseTokenResponse(Buffer.from(bad), now, "r")).toThrow(
        expect.objectContaining({ code: "REGISTRY_AUTH" }),
      );
    }
  });
});

describe("paging and tag schema helpers", () => {
  it("parses Link rel=next", () => {
    expect(parseNextLink('</v2/a/referrers/sha256:x?n=10&last=b>; rel="next"')).toBe(
      "/v2/a/referrers/sha256:x?n=10&last=b",
    );
    expect(parseNextLink('<https://r/a>; rel="prev", <https://r/b>; rel=next')).toBe("https://r/b");
    expect(parseNextLink('<https://r/a>; rel="prev"')).toBeUndefined();
    expect(parseNextLink(undefined)).toBeUndefined();
    expect(parseNextLink("garbage")).toBeUndefined();
  });

  it("referrers tag for a digest", () => {
    expect(referrersTagFor(`sha256:${"ab".repeat(32)}`)).toBe(`sha256-${"ab".repeat(32)}`);
    expect(referrersTagFor(`sha512:${"c".repeat(128)}`)).toBe(`sha512-${"c".repeat(64)}`);
  });
});
