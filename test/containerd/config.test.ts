// The containerd configuration knowledge shared by `tollgate doctor` and `tollgate install`:
// Go filepath.Match globs, import resolution and bounded file reads.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  globToRegExp,
  importCovers,
  MAX_CONFIG_BYTES,
  readConfigText,
  readTomlFile,
  resolveImportPath,
  resolveImports,
} from "../../src/containerd/config.js";

describe("globToRegExp (Go filepath.Match)", () => {
  it("negates a class with a leading ^ only; [!...] is a class containing '!'", () => {
    const neg = globToRegExp("/d/[^a]x.toml");
    expect(neg.test("/d/bx.toml")).toBe(true);
    expect(neg.test("/d/ax.toml")).toBe(false);
    const bang = globToRegExp("/d/[!a]x.toml");
    expect(bang.test("/d/ax.toml")).toBe(true);
    expect(bang.test("/d/!x.toml")).toBe(true);
    expect(bang.test("/d/bx.toml")).toBe(false);
  });

  it("never matches '/' with *, ? or a negated class", () => {
    expect(globToRegExp("/a/*.toml").test("/a/b/c.toml")).toBe(false);
    expect(globToRegExp("/a?b").test("/a/b")).toBe(false);
    expect(globToRegExp("/a[^x]b").test("/a/b")).toBe(false);
    expect(globToRegExp("/a/[ab]?.toml").test("/a/bx.toml")).toBe(true);
  });

  it("ranges, escapes, regexp metacharacters and an unclosed [ are literal where Go's are", () => {
    expect(globToRegExp("/[a-c]9").test("/b9")).toBe(true);
    expect(globToRegExp("/[a-c]9").test("/d9")).toBe(false);
    expect(globToRegExp("/x\\*y").test("/x*y")).toBe(true);
    expect(globToRegExp("/x\\*y").test("/xzy")).toBe(false);
    expect(globToRegExp("/[\\]]").test("/]")).toBe(true);
    expect(globToRegExp("/a.b+(c)").test("/a.b+(c)")).toBe(true);
    expect(globToRegExp("/a.b").test("/axb")).toBe(false);
    expect(globToRegExp("/a[b").test("/a[b")).toBe(true);
  });
});

describe("imports", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-ctrd-config-"));
    mkdirSync(path.join(dir, "conf.d"));
    for (const f of ["b.toml", "a.toml", "notes.txt"]) writeFileSync(path.join(dir, "conf.d", f), "");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("resolves relative to the importing file and cleans the path", () => {
    expect(resolveImportPath("/etc/containerd/config.toml", "conf.d/../x.toml")).toBe(
      "/etc/containerd/x.toml",
    );
    expect(resolveImportPath("/etc/containerd/config.toml", "/abs//y.toml")).toBe("/abs/y.toml");
  });

  it("importCovers: globs only when the entry has '*', as containerd", () => {
    const main = "/etc/containerd/config.toml";
    expect(importCovers(main, "conf.d/*.toml", "/etc/containerd/conf.d/tollgate.toml")).toBe(true);
    expect(importCovers(main, "conf.d/*.toml", "/etc/containerd/conf.d/sub/tollgate.toml")).toBe(false);
    expect(
      importCovers(main, "/etc/containerd/conf.d/tollgate.toml", "/etc/containerd/conf.d/tollgate.toml"),
    ).toBe(true);
    // No '*': containerd takes the entry as a file name, so '?' is a literal character.
    expect(importCovers(main, "conf.d/tollgat?.toml", "/etc/containerd/conf.d/tollgate.toml")).toBe(false);
  });

  it("resolveImports globs on disk, sorted, and reports globs that matched nothing", () => {
    const main = path.join(dir, "config.toml");
    const r = resolveImports(main, ["conf.d/*.toml", "missing/*.toml", "plain.toml"]);
    expect(r.paths).toEqual([
      path.join(dir, "conf.d/a.toml"),
      path.join(dir, "conf.d/b.toml"),
      path.join(dir, "plain.toml"),
    ]);
    expect(r.unmatched).toEqual([path.join(dir, "missing/*.toml")]);
  });

  it("reads regular files up to the cap only", () => {
    const ok = path.join(dir, "ok.toml");
    writeFileSync(ok, 'version = 3\nimports = ["x"]\n');
    expect(readTomlFile(ok)).toEqual({ version: 3, imports: ["x"] });
    const big = path.join(dir, "big.toml");
    writeFileSync(big, Buffer.alloc(MAX_CONFIG_BYTES + 1, 0x20));
    expect(() => readConfigText(big)).toThrow(/larger than/);
    expect(() => readConfigText(path.join(dir, "conf.d"))).toThrow(/not a regular file/);
    const link = path.join(dir, "dangling.toml");
    symlinkSync(path.join(dir, "nowhere"), link);
    expect(() => readConfigText(link)).toThrow(expect.objectContaining({ code: "ENOENT" }));
    expect(() => readTomlFile(path.join(dir, "conf.d", "notes.txt"))).not.toThrow();
  });
});
