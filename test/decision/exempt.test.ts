import { describe, expect, it } from "vitest";
import { ExemptImages, splitReference } from "../../src/decision/exempt.js";

const D = `sha256:${"d".repeat(64)}`;

describe("exempt image patterns", () => {
  it("normalises short names like docker does", () => {
    expect(splitReference("busybox")).toEqual({
      name: "docker.io/library/busybox",
      tag: "latest",
      digest: undefined,
    });
    // containerd drops a tag beside a digest; hosts compare canonically.
    expect(splitReference("localhost:5000/a/b:v1@" + D)).toEqual({ name: "localhost:5000/a/b", digest: D });
    expect(splitReference("Index.Docker.io:443/acme/app:v1")).toEqual({
      name: "docker.io/acme/app",
      tag: "v1",
    });
    expect(splitReference("Not A Name")).toBeUndefined();
  });

  it("matches by name, tag glob, digest and subtree", () => {
    const e = new ExemptImages([
      "registry.k8s.io/pause:3.10",
      `127.0.0.1:5000/pause@${D}`,
      "127.0.0.1:5000/infra/**",
      "pause",
    ]);
    expect(e.match("registry.k8s.io/pause:3.10")).toBe("registry.k8s.io/pause:3.10");
    expect(e.match("registry.k8s.io/pause:3.9")).toBeUndefined();
    expect(e.match("127.0.0.1:5000/pause:any", D)).toBe(`127.0.0.1:5000/pause@${D}`);
    expect(e.match("127.0.0.1:5000/pause:any", `sha256:${"e".repeat(64)}`)).toBeUndefined();
    expect(e.match("127.0.0.1:5000/infra/a/b:v1")).toBe("127.0.0.1:5000/infra/**");
    expect(e.match("127.0.0.1:5000/infrastructure:v1")).toBeUndefined();
    expect(e.match("docker.io/library/pause:latest")).toBe("pause");
    expect(e.match("127.0.0.1:5000/pausex:3.10")).toBeUndefined();
  });

  it("re-spelled hosts neither escape nor widen an exemption", () => {
    const e = new ExemptImages([
      "REGISTRY.k8s.io:443/pause:3.10",
      "index.docker.io/library/busybox",
      "infra.example/**",
    ]);
    expect(e.match("registry.k8s.io/pause:3.10")).toBe("REGISTRY.k8s.io:443/pause:3.10");
    expect(e.match("Registry.K8s.IO/pause:3.10")).toBe("REGISTRY.k8s.io:443/pause:3.10");
    expect(e.match("registry.k8s.io:5000/pause:3.10")).toBeUndefined();
    expect(e.match("busybox:1")).toBe("index.docker.io/library/busybox");
    expect(e.match("registry-1.docker.io/library/busybox:1")).toBe("index.docker.io/library/busybox");
    expect(e.match("INFRA.example:443/a/b:c")).toBe("infra.example/**");
    expect(e.match("infra.example.evil/a:b")).toBeUndefined();
  });
});
