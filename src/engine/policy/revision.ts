// Policy revision: sha256 over canonical JSON of everything that can change an outcome.
// Canonical = object keys sorted, no insignificant whitespace, `undefined` dropped, so the
// same content written with another key order or YAML layout gets the same revision.
import { createHash } from "node:crypto";

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) throw new TypeError("non-finite number");
    const s = JSON.stringify(value);
    return s === undefined ? "null" : s;
  }
  if (value instanceof Uint8Array) return JSON.stringify(Buffer.from(value).toString("base64"));
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** "sha256:<hex>" of the canonical JSON of `material`. */
export function revisionOf(material: unknown): string {
  return `sha256:${sha256Hex(canonicalJson(material))}`;
}
