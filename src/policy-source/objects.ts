// Kubernetes-shaped objects as both sources read them: envelope checks and the byte content
// of Secret / ConfigMap keys. Values are untrusted input: every check returns a sentence.

import { isRecord } from "../base/record.js";

export const MAX_TRUST_OBJECT_KEYS = 256;


/** String-valued map (annotations, ConfigMap data); throws on any non-string value. */
export function stringMap(v: unknown, path: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) throw new Error(`${path} must be a map of strings`);
  const out: Record<string, string> = Object.create(null);
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== "string") throw new Error(`${path}.${k} must be a string`);
    out[k] = val;
  }
  return out;
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function decodeBase64Strict(s: string, path: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  if (!BASE64_RE.test(clean)) throw new Error(`${path} is not valid base64`);
  return new Uint8Array(Buffer.from(clean, "base64"));
}

/**
 * The keys of a Secret (data: base64, stringData: text) or ConfigMap (data: text,
 * binaryData: base64) as bytes. Throws with a path-qualified sentence on malformed content.
 */
export function trustObjectData(
  kind: "Secret" | "ConfigMap",
  obj: Record<string, unknown>,
): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const put = (k: string, v: Uint8Array) => {
    if (out.has(k)) throw new Error(`key ${k} appears twice`);
    out.set(k, v);
  };
  if (kind === "Secret") {
    for (const [k, v] of Object.entries(stringMap(obj.data, "data")))
      put(k, decodeBase64Strict(v, `data.${k}`));
    for (const [k, v] of Object.entries(stringMap(obj.stringData, "stringData")))
      put(k, new TextEncoder().encode(v));
  } else {
    for (const [k, v] of Object.entries(stringMap(obj.data, "data"))) put(k, new TextEncoder().encode(v));
    for (const [k, v] of Object.entries(stringMap(obj.binaryData, "binaryData")))
      put(k, decodeBase64Strict(v, `binaryData.${k}`));
  }
  if (out.size > MAX_TRUST_OBJECT_KEYS) throw new Error(`more than ${MAX_TRUST_OBJECT_KEYS} keys`);
  return out;
}

/** Key order-independent JSON, to tell a changed document from a re-sent identical one. */
export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(",")}]`;
  if (isRecord(v)) {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}
