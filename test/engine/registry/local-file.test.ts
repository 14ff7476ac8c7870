// The capped reader behind docker config.json and hosts.toml loading.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readLocalConfig } from "../../../src/engine/registry/local-file.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-local-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("readLocalConfig", () => {
  it("missing file → undefined; up to the cap → its text", () => {
    expect(readLocalConfig(path.join(dir, "absent.json"), 10)).toBeUndefined();
    const f = path.join(dir, "exact.json");
    writeFileSync(f, "0123456789");
    expect(readLocalConfig(f, 10)).toBe("0123456789");
    writeFileSync(f, "");
    expect(readLocalConfig(f, 10)).toBe("");
  });

  it("one byte over the cap, or not a readable file, is INVALID_CONFIG", () => {
    const f = path.join(dir, "big.json");
    writeFileSync(f, "x".repeat(11));
    expect(() => readLocalConfig(f, 10)).toThrow(
      expect.objectContaining({ code: "INVALID_CONFIG", message: `${f} is larger than 10 bytes` }),
    );
    expect(() => readLocalConfig(dir, 10)).toThrow(
      expect.objectContaining({ code: "INVALID_CONFIG", message: expect.stringMatching(/^cannot read /) }),
    );
  });
});
