// Plain-text rendering helpers: aligned tables without colour (output goes to logs and CI).

/** Renders rows as aligned columns; the last column is never padded. */
export function table(
  header: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  indent = "",
): string {
  const all = [header, ...rows].map((r) => r.map((c) => oneLine(c)));
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all
    .map(
      (r) =>
        indent +
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
          .join("  ")
          .trimEnd(),
    )
    .join("\n");
}

export function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ").trim();
}

/** "sha256:0123456789ab…" — enough to tell digests apart in a table. */
export function shortDigest(d: string | undefined, n = 12): string {
  if (!d) return "-";
  const i = d.indexOf(":");
  return i >= 0 && d.length > i + 1 + n ? `${d.slice(0, i + 1 + n)}…` : d;
}

export function json(v: unknown): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}
