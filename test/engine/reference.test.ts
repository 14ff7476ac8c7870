import { describe, expect, it } from "vitest";
import { EngineError } from "../../src/engine/errors.js";
import { normalizeReference, parseReference } from "../../src/engine/reference.js";

const D = `sha256:${"a".repeat(64)}`;

describe("parseReference / normalizeReference", () => {
  it.each([
    ["busybox", "docker.io/library/busybox:latest", "busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"],
    ["library/busybox", "docker.io/library/busybox:latest", "busybox:latest"],
    ["docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"],
    ["index.docker.io/foo/bar:x", "docker.io/foo/bar:x", "foo/bar:x"],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`],
    [`busybox:1.36@${D}`, `docker.io/library/busybox:1.36@${D}`, `busybox:1.36@${D}`],
    ["foo/bar/baz", "docker.io/foo/bar/baz:latest", "foo/bar/baz:latest"],
    ["localhost/app", "localhost/app:latest", undefined],
    ["localhost:5000/app:v1", "localhost:5000/app:v1", undefined],
    ["127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest", undefined],
    [`[::1]:5000/app@${D}`, `[::1]:5000/app@${D}`, undefined],
    ["[fe80::1]/app:v2", "[fe80::1]/app:v2", undefined],
    ["ghcr.io/org/img:v1.2.3-rc_1", "ghcr.io/org/img:v1.2.3-rc_1", undefined],
    ["Registry.Example.com/app", "Registry.Example.com/app:latest", undefined],
    ["reg.io/a__b/c-d/e.f", "reg.io/a__b/c-d/e.f:latest", undefined],
  ])("%s → %s", (input, normal, familiar) => {
    const r = parseReference(input);
    expect(r.toString()).toBe(normal);
    expect(normalizeReference(input)).toBe(normal);
    expect(r.familiar).toBe(familiar);
  });

  it("splits registry, repository, tag, digest", () => {
    const r = parseReference(`[::1]:5000/team/app:v1@${D}`);
    expect(r).toMatchObject({ registry: "[::1]:5000", repository: "team/app", tag: "v1", digest: D });
    expect(r.name).toBe("[::1]:5000/team/app");
    expect(parseReference("busybox", { defaultTag: false }).tag).toBeUndefined();
  });

  it.each([
    ["", "empty"],
    ["Busybox", "lowercase"],
    ["docker.io/Foo/bar", "lowercase"],
    ["busybox:", "tag"],
    ["busybox:-x", "tag"],
    [`busybox:${"a".repeat(129)}`, "tag"],
    ["busybox@sha256:abc", "digest"],
    [`busybox@sha256:${"A".repeat(64)}`, "digest"],
    [`busybox@md5:${"a".repeat(32)}`, "digest"],
    [`busybox@sha512:${"a".repeat(64)}`, "digest"],
    ["a b", "whitespace"],
    ["foo//bar", "repository"],
    ["foo/bar/", "repository"],
    ["-foo/bar", "repository"],
    ["foo/_bar", "repository"],
    ["reg-.io/app", "registry"],
    ["[::1/app", "registry"],
    ["localhost:abc/app", "registry"],
    ["a".repeat(64), "image ID"],
    [`reg.io/${"a".repeat(260)}`, "longer"],
    ["x".repeat(5000), "longer"],
    [":tag", "repository"],
    ["@" + D, "repository"],
  ])("rejects %j", (input, why) => {
    let err: unknown;
    try {
      parseReference(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).code).toBe("INVALID_REFERENCE");
    expect((err as EngineError).message.toLowerCase()).toContain(why.toLowerCase());
  });
});
