// The agent image (Dockerfile) must ship everything the bundles load at run time: each entry
// file and the chunk folder it imports from (scripts/build.mjs splits both bundles). An entry
// copied without its chunks starts, then fails on its first lazy import — the image once
// shipped tollgate-verify.mjs without verify-chunks/. The outputs are read from build.mjs
// itself (and scripts/verifier-esm.mjs), so a new entry or chunk folder there needs a COPY here too.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../support/tools.js";

/** Paths under dist/ that the runtime stage copies from the build stage. */
function copiedFromDist(dockerfile: string): Set<string> {
  const out = new Set<string>();
  for (const line of dockerfile.replace(/\\\n/g, " ").split("\n")) {
    const m = /^COPY\s+--from=build\s+(.+)$/.exec(line.trim());
    if (!m) continue;
    const parts = m[1]!.trim().split(/\s+/);
    parts.pop(); // the destination
    for (const src of parts)
      if (src.startsWith("/src/dist/")) out.add(src.slice("/src/dist/".length).replace(/\/$/, ""));
  }
  return out;
}

/** Entry files (`<name>.mjs`) and chunk folders scripts/build.mjs writes into dist/. */
function buildOutputs(buildScript: string): string[] {
  const out: string[] = [];
  for (const m of buildScript.matchAll(/entryPoints:\s*\{\s*"?([\w-]+)"?\s*:/g)) out.push(`${m[1]}.mjs`);
  for (const m of buildScript.matchAll(/outfile:\s*"dist\/([^"]+)"/g)) out.push(m[1]!);
  for (const m of buildScript.matchAll(/chunkNames:\s*"([\w-]+)\//g)) out.push(m[1]!);
  return out;
}

describe("agent image", () => {
  it("copies every entry bundle and every chunk folder that scripts/build.mjs writes", () => {
    // build.mjs and the ESM verifier's options it uses.
    const outputs = ["build.mjs", "verifier-esm.mjs"].flatMap((f) =>
      buildOutputs(readFileSync(path.join(repoRoot, "scripts", f), "utf8")),
    );
    expect(outputs).toEqual(
      expect.arrayContaining(["tollgate.mjs", "tollgate-verify.mjs", "chunks", "verify-chunks"]),
    );
    const copied = copiedFromDist(readFileSync(path.join(repoRoot, "Dockerfile"), "utf8"));
    for (const o of outputs) expect(copied.has(o), `Dockerfile does not copy dist/${o}`).toBe(true);
    // The self-contained verifier the installer places on nodes.
    expect(copied.has("tollgate-verify")).toBe(true);
  });

  it("the check reads COPY lines as Docker does (continuations, several sources, trailing slashes)", () => {
    const copied = copiedFromDist(
      "FROM x AS build\nFROM y\nCOPY --from=build /src/dist/a.mjs \\\n  /src/dist/b/ /opt/t/dist/\nCOPY --from=other /src/dist/c /x\nCOPY --from=build /src/package.json /opt/t/\n",
    );
    expect([...copied].sort()).toEqual(["a.mjs", "b"]);
  });
});
