// Whole trust policy documents: the ImagePolicy that `tollgate policy import notation` makes
// from a notation configuration directory (compiled exactly as the agent compiles it) against
// the real `notation verify` 1.3.2 reading that directory. Several trust policies in one
// document, scoped and "*" policies, scope misses, every level, an override, TSA on/off,
// verifyTimestamp, a store the document names but the directory lacks, skip.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { importNotationDir } from "../../../src/cli/import-notation.js";
import { type FileDoc, fileTrustResolver } from "../../../src/cli/policy-file.js";
import { verifyNotation } from "../../../src/engine/notation/verify.js";
import { compilePolicy } from "../../../src/engine/policy/compile.js";
import type { CompiledPolicy, NotationConfig } from "../../../src/engine/policy/model.js";
import type { SignatureCheck } from "../../../src/engine/types.js";
import { type LocalRegistry, startRegistry } from "../../support/registry.js";
import { assertToolsInstalled } from "../../support/tools.js";
import { artifactSource, notationVerify } from "./harness.js";
import { buildTrustPolicyFixture, type DocCase, type TrustPolicyFixture } from "./trustpolicy-fixture.js";

let dir: string;
let reg: LocalRegistry;
let fx: TrustPolicyFixture;
const compiled = new Map<string, CompiledPolicy>();

/** import → YAML text → documents → compile, as `tollgate policy import` + the file source do. */
async function importAndCompile(configDir: string, inline: boolean): Promise<CompiledPolicy> {
  const { docs } = importNotationDir(configDir, { name: "imported", inline });
  const fileDocs: FileDoc[] = docs.map((d, index) => {
    const meta = d.metadata as { name: string; namespace?: string };
    return {
      file: "import.yaml",
      line: 1,
      index,
      kind: d.kind as string,
      name: meta.name,
      ...(meta.namespace ? { namespace: meta.namespace } : {}),
      value: JSON.parse(JSON.stringify(d)) as unknown,
    };
  });
  // The YAML must round-trip (what the user applies is the printed text).
  for (const d of docs) expect(stringify(d)).toContain("kind:");
  const policy = fileDocs.find((d) => d.kind === "ImagePolicy")!.value;
  return compilePolicy(policy, { resolver: fileTrustResolver(fileDocs).resolver });
}

async function ours(c: DocCase, inline: boolean): Promise<{ ok: boolean; checks: SignatureCheck[] }> {
  const key = `${c.home.configDir}|${inline}`;
  let p = compiled.get(key);
  if (!p) {
    p = await importAndCompile(c.home.configDir, inline);
    compiled.set(key, p);
  }
  const v = p.verifiers[0]!;
  if (v.kind !== "notation") throw new Error("expected a notation verifier");
  const repo = c.image.repo.slice(reg.host.length + 1);
  const src = await artifactSource(reg.url, reg.host, repo, c.image.digest);
  const checks = await verifyNotation(src, v.notation as NotationConfig, { verifierName: "notation" });
  return { ok: checks.some((k) => k.result === "passed"), checks };
}

beforeAll(async () => {
  assertToolsInstalled();
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-trustpolicy-"));
  reg = await startRegistry(path.join(dir, "registry"));
  fx = await buildTrustPolicyFixture(dir, reg.host);
  const wait = fx.expiredAfter - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}, 240_000);

afterAll(async () => {
  await fx?.close();
  await reg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("trust policy documents: imported ImagePolicy vs `notation verify`", () => {
  it("reaches notation's verdict on every case (ConfigMap and inline import alike)", async () => {
    const rows: string[] = [];
    const problems: string[] = [];
    for (const c of fx.cases) {
      const cli = await notationVerify(c.home.home, c.image.pinned);
      const mine = await ours(c, false);
      const inl = await ours(c, true);
      const v = (ok: boolean) => (ok ? "pass" : "fail");
      const why = mine.checks.map((k) => `${k.result}/${k.check}: ${k.reason}`).join(" | ");
      rows.push(
        `${c.name.padEnd(26)} ${v(cli.ok).padEnd(8)} ${v(mine.ok).padEnd(8)} ${v(inl.ok).padEnd(8)} ${why.slice(0, 140)}`,
      );
      if (v(cli.ok) !== c.expect)
        problems.push(`${c.name}: notation=${v(cli.ok)}, expected ${c.expect}: ${cli.output.slice(0, 300)}`);
      if (mine.ok !== cli.ok) problems.push(`${c.name}: ours=${v(mine.ok)} notation=${v(cli.ok)} (${why})`);
      if (inl.ok !== mine.ok)
        problems.push(`${c.name}: inline import=${v(inl.ok)} differs from ConfigMap import`);
    }
    console.log(
      [
        `${"case".padEnd(26)} ${"notation".padEnd(8)} ${"ours".padEnd(8)} ${"inline".padEnd(8)} our reason`,
        ...rows,
      ].join("\n"),
    );
    expect(problems).toEqual([]);
    expect(fx.tsa.requests).toBeGreaterThan(0);
  }, 180_000);
});
