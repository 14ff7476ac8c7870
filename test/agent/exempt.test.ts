import { describe, expect, it } from "vitest";
import { ExemptImages, splitReference } from "../../src/agent/exempt.js";

const D = `sha256:${"d".repeat(64)}`;

describe("exempt image patterns", () => {
  it("normalises short names like docker does", () => {
    expect(splitReference("busybox")).toEqual({
      name: "docker.io/library/busybox",
      tag: "latest",
      digest: undefined,
    });
    expect(splitReference("localhost:5000/a/b:v1@" + D)).toEqual({
      name: "localhost:5000/a/b",
      tag: "v1",
      digest: D,
    });
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
});
