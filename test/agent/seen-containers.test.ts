// The record of containers the gate has seen (src/agent/seen-containers.ts): what tells a
// container created while the plugin was away apart from one gated earlier.
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { SeenContainers } from "../../src/agent/seen-containers.js";

const log = {
  warnings: [] as string[],
  warn(o: object, m?: string) {
    this.warnings.push(`${m} ${JSON.stringify(o)}`);
  },
};

describe("seen containers", () => {
  it("no record on a fresh node: no baseline (nothing counts as created in the gap)", () => {
    const s = new SeenContainers(path.join(mkdtempSync(path.join(os.tmpdir(), "tg-seen-")), "s.json"), log);
    s.load();
    expect(s.hasBaseline).toBe(false);
  });

  it("persists across restarts (0600, atomic) and a Synchronize replaces the set", () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), "tg-seen-")), "state", "s.json");
    const a = new SeenContainers(file, log);
    a.load();
    a.replace(["c1", "c2"]);
    a.add("c3");
    a.flush();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const b = new SeenContainers(file, log);
    b.load();
    expect(b.hasBaseline).toBe(true);
    expect(["c1", "c2", "c3", "c4"].map((id) => b.has(id))).toEqual([true, true, true, false]);
    b.replace(["c3"]);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ containers: ["c3"] });
  });

  it("a record that others can write, or that does not parse, is ignored (no baseline: nothing evicted)", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "tg-seen-"));
    const file = path.join(dir, "s.json");
    writeFileSync(file, JSON.stringify({ containers: ["x"] }));
    chmodSync(file, 0o666);
    const a = new SeenContainers(file, log);
    a.load();
    expect(a.hasBaseline).toBe(false);
    chmodSync(file, 0o600);
    writeFileSync(file, "{not json");
    const b = new SeenContainers(file, log);
    b.load();
    expect(b.hasBaseline).toBe(false);
    expect(log.warnings.length).toBeGreaterThanOrEqual(2);
  });
});
