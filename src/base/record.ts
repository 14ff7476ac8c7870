/** A JSON/YAML object (not null, not an array): the guard every parser of untrusted input starts with. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
