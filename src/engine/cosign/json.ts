// Bounded, typed JSON parsing for untrusted signature content: every failure is an
// EngineError MALFORMED/TOO_LARGE with a sentence naming what was wrong.
import { isRecord } from "../../base/record.js";
import { EngineError } from "../errors.js";
import { LIMITS } from "./types.js";

export type JsonObject = { [k: string]: unknown };

export function parseJsonBytes(
  bytes: Uint8Array,
  what: string,
  maxBytes: number = LIMITS.maxLayerBytes,
): unknown {
  if (bytes.byteLength > maxBytes) {
    throw new EngineError(
      "TOO_LARGE",
      `${what} is ${bytes.byteLength} bytes, more than the ${maxBytes}-byte cap`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    throw new EngineError("MALFORMED", `${what} is not valid UTF-8`, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new EngineError("MALFORMED", `${what} is not valid JSON`, { cause: e });
  }
  checkDepth(value, what);
  return value;
}

/** Rejects pathologically nested JSON before any recursive code touches it. */
function checkDepth(root: unknown, what: string): void {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number];
    if (d > LIMITS.maxJsonDepth) throw new EngineError("MALFORMED", `${what} is nested too deeply`);
    if (v !== null && typeof v === "object") {
      for (const child of Object.values(v as object)) {
        if (child !== null && typeof child === "object") stack.push([child, d + 1]);
      }
    }
  }
}

export function asObject(v: unknown, what: string): JsonObject {
  if (!isRecord(v)) throw new EngineError("MALFORMED", `${what} is not a JSON object`);
  return v;
}

export function asString(v: unknown, what: string): string {
  if (typeof v !== "string") throw new EngineError("MALFORMED", `${what} is not a string`);
  return v;
}

export function optString(v: unknown, what: string): string | undefined {
  return v === undefined ? undefined : asString(v, what);
}

export function asArray(v: unknown, what: string, max: number): unknown[] {
  if (!Array.isArray(v)) throw new EngineError("MALFORMED", `${what} is not a JSON array`);
  if (v.length > max) throw new EngineError("TOO_MANY", `${what} has ${v.length} entries, more than ${max}`);
  return v;
}

/** A string→string map (null/absent → empty), e.g. cosign's `optional` or in-toto annotations. */
export function asStringMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  const o = asObject(v, what);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(o)) {
    // cosign's annotations are map[string]interface{}; only strings can match a constraint.
    if (typeof val === "string") out[k] = val;
  }
  return out;
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict standard base64 (what cosign and the bundle JSON use). */
export function decodeBase64(s: string, what: string, maxBytes = LIMITS.maxLayerBytes): Buffer {
  if (s.length > Math.ceil((maxBytes * 4) / 3) + 4)
    throw new EngineError("TOO_LARGE", `${what} is too large`);
  if (!B64.test(s)) throw new EngineError("MALFORMED", `${what} is not valid base64`);
  return Buffer.from(s, "base64");
}
