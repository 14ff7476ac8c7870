import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ExemptImages } from "../../src/decision/exempt.js";
import {
  canonicalReference,
  canonicalRegistry,
  classifyCriImage,
  idMatchesPrefix,
  imageIdentity,
  lookupIdPrefix,
  storedName,
} from "../../src/engine/identity.js";
import { compilePatterns } from "../../src/engine/policy/patterns.js";

const D = `sha256:${"a".repeat(64)}`;
const HEX64 = "0123456789abcdef".repeat(4);

describe("stored names (containerd's ParseDockerRef)", () => {
  it.each([
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    [`busybox:1.36@${D}`, `docker.io/library/busybox@${D}`],
    [`127.0.0.1:5000/team/app:v1@${D}`, `127.0.0.1:5000/team/app@${D}`],
    ["index.docker.io/busybox", "docker.io/library/busybox:latest"],
    ["docker.io/acme/app", "docker.io/acme/app:latest"],
    // containerd aliases only index.docker.io; other spellings keep their host (and case).
    ["registry-1.docker.io/busybox:1", "registry-1.docker.io/busybox:1"],
    ["Registry.Example:443/team/app", "Registry.Example:443/team/app:latest"],
    ["localhost/app", "localhost/app:latest"],
    [`${HEX64}:v1`, `docker.io/library/${HEX64}:v1`],
    ["sha256:abc", "docker.io/library/sha256:abc"],
  ])("%s → %s", (input, want) => {
    expect(storedName(input)).toBe(want);
  });

  it("refuses what containerd refuses", () => {
    for (const bad of [HEX64, "Busybox", "a b", "", "app@sha256:abc", "reg.io/App:v1"])
      expect(() => storedName(bad)).toThrow();
  });
});

describe("canonical identity (governance)", () => {
  it.each([
    ["REG.example:443/team/app:v1", "reg.example/team/app:v1"],
    ["reg.example:5000/team/app:v1", "reg.example:5000/team/app:v1"],
    ["registry-1.docker.io/library/busybox", "docker.io/library/busybox:latest"],
    ["Index.Docker.IO/acme/app:2", "docker.io/acme/app:2"],
    ["docker.io:443/acme/app:2", "docker.io/acme/app:2"],
    [`busybox:1@${D}`, `docker.io/library/busybox@${D}`],
    ["[::1]:443/a", "[::1]/a:latest"],
    ["[::1]:5000/a", "[::1]:5000/a:latest"],
  ])("%s → %s", (input, want) => {
    expect(canonicalReference(input)).toBe(want);
  });

  it("canonical registries", () => {
    expect(canonicalRegistry("Index.Docker.Io:443")).toBe("docker.io");
    expect(canonicalRegistry("registry-1.docker.io")).toBe("docker.io");
    expect(canonicalRegistry("127.0.0.1:443")).toBe("127.0.0.1");
    expect(canonicalRegistry("127.0.0.1:4430")).toBe("127.0.0.1:4430");
  });
});

describe("CRI image strings (LocalResolve order)", () => {
  it("classifies IDs, names and ID prefixes", () => {
    expect(classifyCriImage(`sha256:${HEX64}`)).toEqual({ kind: "id", id: `sha256:${HEX64}` });
    const short = classifyCriImage("0123abcd");
    expect(short).toMatchObject({ kind: "name", stored: "docker.io/library/0123abcd:latest" });
    expect(short.kind === "name" && short.idPrefix).toEqual({ hex: "0123abcd" });
    const algShort = classifyCriImage("sha256:0123ab");
    expect(algShort.kind === "name" && algShort.idPrefix).toEqual({ algorithm: "sha256", hex: "0123ab" });
    expect(classifyCriImage("app:v1")).toMatchObject({ kind: "name" });
    expect(
      classifyCriImage("app:v1").kind === "name" &&
        (classifyCriImage("app:v1") as { idPrefix?: unknown }).idPrefix,
    ).toBeFalsy();
    expect(classifyCriImage(HEX64)).toMatchObject({ kind: "id-prefix", idPrefix: { hex: HEX64 } });
    expect(classifyCriImage("Not An Image")).toMatchObject({ kind: "invalid" });
  });

  it("ID prefixes follow the digest set: exact algorithm, hex prefix, ambiguity refused", () => {
    const ids = [`sha256:ab${"1".repeat(62)}`, `sha256:ab${"2".repeat(62)}`, `sha256:cd${"3".repeat(62)}`];
    expect(lookupIdPrefix(ids, { hex: "cd" })).toBe(ids[2]);
    expect(lookupIdPrefix(ids, { algorithm: "sha256", hex: "ab1" })).toBe(ids[0]);
    expect(lookupIdPrefix(ids, { algorithm: "sha512", hex: "ab1" })).toBeUndefined();
    expect(lookupIdPrefix(ids, { hex: "ef" })).toBeUndefined();
    expect(() => lookupIdPrefix(ids, { hex: "ab" })).toThrow(/ambiguous/);
    expect(idMatchesPrefix(ids[0]!, { hex: "ab11" })).toBe(true);
  });
});

// Generated spellings of one registry repository: every spelling a tenant may choose must
// get the same governance and exemption answer as the canonical spelling.
const hub = fc.constantFrom(
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "Docker.IO",
  "docker.io:443",
);
const host = fc.oneof(
  fc
    .tuple(
      fc.constantFrom("reg.example", "registry.acme.io", "10.1.2.3"),
      fc.constantFrom("", ":443", ":5000"),
    )
    .map(([h, p]) => h + p),
  fc.constantFrom("localhost:5000", "[::1]:5000"),
);
const upcase = (s: string, mask: number) =>
  [...s].map((c, i) => ((mask >> (i % 30)) & 1 ? c.toUpperCase() : c)).join("");
const component = fc.stringMatching(/^[a-z0-9]{1,6}(?:[._-][a-z0-9]{1,4})?$/);
// A first component with "." or ":" would be a host: namespaces on Docker Hub have none.
const hubNamespace = fc.stringMatching(/^[a-z0-9]{1,6}(?:[_-][a-z0-9]{1,4})?$/);
const path = fc.array(component, { minLength: 1, maxLength: 3 }).map((a) => a.join("/"));
const suffix = fc.oneof(
  fc.constant(""),
  fc.stringMatching(/^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,10}$/).map((t) => `:${t}`),
  fc.constant(`@${D}`),
  fc.stringMatching(/^[a-z0-9]{1,5}$/).map((t) => `:${t}@${D}`),
);

describe("property: spelling never changes governance or exemption", () => {
  it("host case, :443 and Docker Hub aliases give one identity", () => {
    fc.assert(
      fc.property(host, fc.integer({ min: 0, max: 2 ** 30 }), path, suffix, (h, mask, p, s) => {
        const plain = `${canonicalRegistry(h)}/${p}${s}`;
        const spelled = `${upcase(h, mask)}/${p}${s}`;
        expect(canonicalReference(spelled)).toBe(canonicalReference(plain));
        // A stored name is a fixed point, and keeps the identity of what was written.
        const stored = storedName(spelled);
        expect(storedName(stored)).toBe(stored);
        expect(canonicalReference(stored)).toBe(canonicalReference(spelled));
        // Governance, policy exemptions and agent exemptions agree across spellings.
        const repo = imageIdentity(plain, { defaultTag: false }).repository;
        for (const pattern of [`${repo}`, `${upcase(h, ~mask)}/${p}`, `${repo.split("/")[0]}/**`]) {
          expect(compilePatterns([pattern])(spelled)).toBe(true);
          expect(new ExemptImages([pattern]).match(spelled, D)).toBe(pattern);
        }
        // Another port is another registry.
        const other = `${canonicalRegistry(h).replace(/:\d+$/, "")}:6000/${p}`;
        expect(compilePatterns([`${repo}`])(other + s)).toBe(false);
        expect(new ExemptImages([repo]).match(other + s, D)).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });

  it("Docker Hub spellings: short names, library/, index.docker.io, registry-1.docker.io", () => {
    fc.assert(
      fc.property(hub, hubNamespace, component, suffix, (h, ns, name, s) => {
        const short = `${ns}/${name}${s}`;
        const spelled = `${h}/${ns}/${name}${s}`;
        expect(canonicalReference(spelled)).toBe(canonicalReference(short));
        expect(compilePatterns([`${ns}/**`])(spelled)).toBe(true);
        expect(compilePatterns([`docker.io/${ns}/${name}`])(spelled)).toBe(true);
        expect(new ExemptImages([`index.docker.io/${ns}/**`]).match(spelled, D)).toBeDefined();
        // Official images: "name" ≡ docker.io/library/name ≡ index.docker.io/name.
        const official = `${name}${s}`;
        expect(canonicalReference(`index.docker.io/${official}`)).toBe(canonicalReference(official));
        expect(compilePatterns([name])(`docker.io/library/${official}`)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("memoised answers (the create path asks the same names again)", () => {
  const names = [
    "busybox",
    "registry.example:443/team/app:v1",
    `r.io/a:v1@${D}`,
    "0123abcd",
    "localhost:5000/a/b:v1",
  ];

  it("classifyCriImage and imageIdentity give the same frozen answer each time, equal to a fresh one", () => {
    for (const n of names) {
      const c = classifyCriImage(n);
      expect(classifyCriImage(n)).toBe(c);
      if (c.kind === "name") {
        expect(Object.isFrozen(c) && Object.isFrozen(c.ref)).toBe(true);
        expect(c.stored).toBe(storedName(n));
      }
      if (c.kind !== "name") continue;
      const id = imageIdentity(n);
      expect(imageIdentity(n)).toBe(id);
      expect(Object.isFrozen(id)).toBe(true);
      // Push the memo past its bound so the next answers are worked out again.
      for (let i = 0; i < 4100; i++) classifyCriImage(`filler/x${i}:v1`), imageIdentity(`filler/x${i}:v1`);
      const again = classifyCriImage(n);
      expect(again).not.toBe(c);
      expect(JSON.stringify(again)).toBe(JSON.stringify(c));
      expect(imageIdentity(n)).toEqual(id);
    }
  });

  it("invalid names and IDs are answered the same way on every call", () => {
    for (const bad of ["UPPER/Case:v1", "a b", ""]) {
      expect(classifyCriImage(bad).kind).toBe("invalid");
      expect(classifyCriImage(bad).kind).toBe("invalid");
      expect(canonicalReference(bad)).toBeUndefined();
      expect(canonicalReference(bad)).toBeUndefined();
    }
    expect(classifyCriImage(`sha256:${HEX64}`)).toEqual({ kind: "id", id: `sha256:${HEX64}` });
  });
});
