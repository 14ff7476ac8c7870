// The docs stand alone: every link in README.md and docs/ stays inside the repository and
// points at a file (and heading) that exists; no text points readers at files outside it.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../support/tools.js";

const files = [
  path.join(repoRoot, "README.md"),
  ...readdirSync(path.join(repoRoot, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => path.join(repoRoot, "docs", f)),
];

/** GitHub's heading anchors: lower case, punctuation dropped, spaces → '-'. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, "")
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");
}

function anchors(file: string): Set<string> {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  return new Set(
    text
      .split("\n")
      .filter((l) => /^#{1,6} /.test(l))
      .map((l) => slug(l.replace(/^#+ /, ""))),
  );
}

/** Markdown links and images outside code blocks and code spans: [text](target). */
function linksOf(text: string): string[] {
  const prose = text.replace(/```[\s\S]*?```/g, "").replace(/`[^`\n]*`/g, "");
  return [...prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!);
}

function problems(file: string): string[] {
  const out: string[] = [];
  const text = readFileSync(file, "utf8");
  const rel = path.relative(repoRoot, file);
  for (const target of linksOf(text)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
      out.push(`${rel}: ${target} leaves the repository`);
      continue;
    }
    const [p, anchor] = target.split("#", 2) as [string, string | undefined];
    const dest = p === "" ? file : path.resolve(path.dirname(file), decodeURIComponent(p));
    if (path.relative(repoRoot, dest).startsWith("..") || path.isAbsolute(p)) {
      out.push(`${rel}: ${target} points outside the repository`);
      continue;
    }
    if (!existsSync(dest)) {
      out.push(`${rel}: ${target} does not exist`);
      continue;
    }
    if (anchor && dest.endsWith(".md") && statSync(dest).isFile() && !anchors(dest).has(anchor))
      out.push(`${rel}: ${target} — no heading #${anchor} in ${path.relative(repoRoot, dest)}`);
  }
  // Plain-text pointers at files the repository does not ship.
  for (const m of text.matchAll(/\.\.\/shared\/|\/work\/shared/g))
    out.push(`${rel}: mentions ${m[0]} (not part of the repository)`);
  return out;
}

describe("docs stand alone", () => {
  it("finds the links it is meant to check (and catches bad ones)", () => {
    expect(linksOf("see [a](docs/a.md#x) and ![i](img.png) but not `[c](d)`")).toEqual([
      "docs/a.md#x",
      "img.png",
    ]);
    expect(slug("containerd 2.2 and later: creates fail closed while the agent is away")).toBe(
      "containerd-22-and-later-creates-fail-closed-while-the-agent-is-away",
    );
  });

  it("README.md and docs/*.md: no link leaves the repository, every target and anchor exists", () => {
    expect(files.length).toBeGreaterThan(5);
    expect(files.flatMap(problems)).toEqual([]);
  });
});
