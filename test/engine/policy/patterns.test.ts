import { describe, expect, it } from "vitest";
import { compilePatterns, normalisePattern, repositoryOf } from "../../../src/engine/policy/index.js";

const A = `sha256:${"a".repeat(64)}`;
const B = `sha256:${"b".repeat(64)}`;

describe("image patterns", () => {
  it("normalises Docker Hub short names like references", () => {
    expect(normalisePattern("busybox")).toBe("docker.io/library/busybox");
    expect(normalisePattern("acme/app:*")).toBe("docker.io/acme/app:*");
    expect(normalisePattern("index.docker.io/acme/app")).toBe("docker.io/acme/app");
    expect(normalisePattern("127.0.0.1:5000/a/b")).toBe("127.0.0.1:5000/a/b");
    expect(normalisePattern("localhost/a")).toBe("localhost/a");
    expect(normalisePattern("**")).toBe("**");
    expect(normalisePattern("Index.Docker.IO:443/acme/*")).toBe("docker.io/acme/*");
    expect(normalisePattern("REG.example:443/team/**")).toBe("reg.example/team/**");
    expect(normalisePattern(`reg.example/app:v1@${A}`)).toBe(`reg.example/app@${A}`);
  });

  it("splits the repository off tags and digests, ports included", () => {
    expect(repositoryOf("127.0.0.1:5000/a/b:1.0")).toBe("127.0.0.1:5000/a/b");
    expect(repositoryOf("127.0.0.1:5000/a/b@sha256:ab")).toBe("127.0.0.1:5000/a/b");
    expect(repositoryOf("127.0.0.1:5000/a/b:1@sha256:ab")).toBe("127.0.0.1:5000/a/b");
    expect(repositoryOf("127.0.0.1:5000/a/b")).toBe("127.0.0.1:5000/a/b");
  });

  const table: [string, string, boolean][] = [
    ["**", "docker.io/library/busybox:1.36", true],
    ["127.0.0.1:5000/team/*", "127.0.0.1:5000/team/app:1.0", true],
    ["127.0.0.1:5000/team/*", "127.0.0.1:5000/team/sub/app:1.0", false],
    ["127.0.0.1:5000/team/**", `127.0.0.1:5000/team/sub/app@${A}`, true],
    ["127.0.0.1:5000/team/**", "127.0.0.1:5000/teamx/app:1", false],
    ["busybox", "docker.io/library/busybox:1.36", true],
    ["busybox", "docker.io/library/busybox-extra:1", false],
    ["ghcr.io/acme/app:1.*", "ghcr.io/acme/app:1.2", true],
    ["ghcr.io/acme/app:1.*", "ghcr.io/acme/app:2.0", false],
    [`registry.k8s.io/pause@${A}`, `registry.k8s.io/pause@${A}`, true],
    [`registry.k8s.io/pause@${A}`, `registry.k8s.io/pause@${B}`, false],
    [`registry.k8s.io/pause@${A}`, "registry.k8s.io/pause:3.10", false],
    // containerd drops a tag beside a digest; so do patterns and references.
    [`registry.k8s.io/pause:3.10@${A}`, `registry.k8s.io/pause@${A}`, true],
    [`registry.k8s.io/pause@${A}`, `registry.k8s.io/pause:any@${A}`, true],
    // Host spellings of one registry are one registry.
    ["registry.example/team/**", "REGISTRY.Example:443/team/app:v1", true],
    ["Registry.EXAMPLE:443/team/**", "registry.example/team/app:v1", true],
    ["registry.example/team/**", "registry.example:5000/team/app:v1", false],
    ["docker.io/library/*", "index.docker.io/library/busybox:1", true],
    ["docker.io/acme/**", "registry-1.docker.io/acme/app:1", true],
    ["busybox", "index.docker.io/busybox:1", true],
    ["*.example.com/**", "EU.Example.com/a/b:1", true],
    ["*.example.com/**", "eu.example.com/a/b:1", true],
    ["*.example.com/**", "example.com/a/b:1", false],
    ["a.io/x.y", "a.io/xzy:1", false],
  ];
  it.each(table)("%s vs %s → %s", (pattern, ref, want) => {
    expect(compilePatterns([pattern])(ref)).toBe(want);
  });

  it("no patterns match nothing", () => {
    expect(compilePatterns([])("docker.io/library/busybox:1")).toBe(false);
  });
});
