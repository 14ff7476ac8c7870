// Field readers for ImagePolicy validation: each reads one field of an untrusted object,
// records an issue with its exact path when it is wrong, and returns the value or undefined.
import type { PolicyIssue } from "./errors.js";
import type { MaterialSource, ObjectKeyRef } from "./model.js";
import { checkKmsUri } from "./kmp.js";
import { checkPattern } from "./patterns.js";

export const LIMITS = {
  patterns: 1024,
  verifiers: 32,
  trustStores: 32,
  keys: 64,
  identities: 64,
  pemChars: 1 << 20,
  regoBase64Chars: 22 << 20,
  dataChars: 1 << 20,
};

export const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
export type Obj = Record<string, unknown>;

export class Ctx {
  readonly issues: PolicyIssue[] = [];
  add(path: string, message: string): void {
    this.issues.push({ path, message });
  }
}

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

export function obj(ctx: Ctx, v: unknown, path: string, allowed: readonly string[]): Obj | undefined {
  if (!isObj(v)) {
    ctx.add(path, `must be an object, got ${describe(v)}`);
    return undefined;
  }
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) ctx.add(`${path}.${k}`, `unknown field (allowed: ${allowed.join(", ")})`);
  }
  return v;
}

export function str(ctx: Ctx, o: Obj, key: string, path: string, required: boolean): string | undefined {
  const v = o[key];
  if (v === undefined) {
    if (required) ctx.add(`${path}.${key}`, "required");
    return undefined;
  }
  if (typeof v !== "string") {
    ctx.add(`${path}.${key}`, `must be a string, got ${describe(v)}`);
    return undefined;
  }
  if (required && v.length === 0) {
    ctx.add(`${path}.${key}`, "must not be empty");
    return undefined;
  }
  return v;
}

export function oneOf<T extends string>(
  ctx: Ctx,
  o: Obj,
  key: string,
  path: string,
  values: readonly T[],
  dflt: T | undefined,
): T | undefined {
  const v = o[key];
  if (v === undefined) {
    if (dflt === undefined) ctx.add(`${path}.${key}`, `required (one of ${values.join(", ")})`);
    return dflt;
  }
  if (typeof v !== "string" || !values.includes(v as T)) {
    ctx.add(`${path}.${key}`, `must be one of ${values.join(", ")}, got ${JSON.stringify(v)}`);
    return undefined;
  }
  return v as T;
}

export function bool(ctx: Ctx, o: Obj, key: string, path: string, dflt: boolean): boolean {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") {
    ctx.add(`${path}.${key}`, `must be a boolean, got ${describe(v)}`);
    return dflt;
  }
  return v;
}

export function arr(ctx: Ctx, o: Obj, key: string, path: string, max: number): unknown[] | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) {
    ctx.add(`${path}.${key}`, `must be a list, got ${describe(v)}`);
    return undefined;
  }
  if (v.length > max) {
    ctx.add(`${path}.${key}`, `at most ${max} entries allowed, got ${v.length}`);
    return undefined;
  }
  return v;
}

export function patterns(ctx: Ctx, o: Obj, key: string, path: string): string[] | undefined {
  const list = arr(ctx, o, key, path, LIMITS.patterns);
  if (list === undefined) return undefined;
  const out: string[] = [];
  for (const [i, p] of list.entries()) {
    const at = `${path}.${key}[${i}]`;
    if (typeof p !== "string") {
      ctx.add(at, `must be a string, got ${describe(p)}`);
      continue;
    }
    const why = checkPattern(p);
    if (why) ctx.add(at, why);
    else out.push(p);
  }
  return out;
}

export function objectKeyRef(ctx: Ctx, v: unknown, path: string): ObjectKeyRef | undefined {
  const o = obj(ctx, v, path, ["name", "namespace", "key"]);
  if (!o) return undefined;
  const name = str(ctx, o, "name", path, true);
  const namespace = str(ctx, o, "namespace", path, true);
  const key = str(ctx, o, "key", path, true);
  if (name === undefined || namespace === undefined || key === undefined) return undefined;
  return { name, namespace, key };
}

/**
 * Exactly one of: inline field `inlineKey`, `secretRef`, `configMapRef`. `check` validates
 * inline text (the same check runs on resolved bytes in compile.ts).
 */
export function material(
  ctx: Ctx,
  o: Obj,
  path: string,
  inlineKey: string,
  check: ((text: string) => string | undefined) | undefined,
  maxChars: number,
  providers: ("keyManagementProvider" | "kms")[] = [],
): MaterialSource | undefined {
  const fields = [inlineKey, "secretRef", "configMapRef", ...providers];
  const present = fields.filter((k) => o[k] !== undefined);
  if (present.length !== 1) {
    ctx.add(
      path,
      present.length === 0
        ? `one of ${fields.join(", ")} is required`
        : `only one of ${present.join(", ")} may be set`,
    );
    return undefined;
  }
  if (o.keyManagementProvider !== undefined && providers.includes("keyManagementProvider")) {
    const r = str(ctx, o, "keyManagementProvider", path, true);
    return r === undefined ? undefined : { keyManagementProvider: r };
  }
  if (o.kms !== undefined && providers.includes("kms")) {
    const r = str(ctx, o, "kms", path, true);
    const why = r === undefined ? "required" : checkKmsUri(r);
    if (why) ctx.add(`${path}.kms`, why);
    return r === undefined || why ? undefined : { kms: r };
  }
  if (o.secretRef !== undefined) {
    const r = objectKeyRef(ctx, o.secretRef, `${path}.secretRef`);
    return r && { secretRef: r };
  }
  if (o.configMapRef !== undefined) {
    const r = objectKeyRef(ctx, o.configMapRef, `${path}.configMapRef`);
    return r && { configMapRef: r };
  }
  const text = o[inlineKey];
  if (typeof text !== "string") {
    ctx.add(`${path}.${inlineKey}`, `must be a string, got ${describe(text)}`);
    return undefined;
  }
  if (text.length > maxChars) {
    ctx.add(`${path}.${inlineKey}`, `longer than ${maxChars} characters`);
    return undefined;
  }
  const why = check?.(text);
  if (why) {
    ctx.add(`${path}.${inlineKey}`, why);
    return undefined;
  }
  return { inline: text };
}

/**
 * A JSON document (trusted root, trust policy) given inline — as an object or as JSON text —
 * or as a Secret/ConfigMap reference; `check` validates the inline text.
 */
export function jsonMaterial(
  ctx: Ctx,
  v: unknown,
  path: string,
  key: string,
  check: (text: string) => string | undefined,
  maxChars: number = LIMITS.pemChars,
): MaterialSource | undefined {
  if (isObj(v) && (v.configMapRef !== undefined || v.secretRef !== undefined)) {
    const ro = obj(ctx, v, `${path}.${key}`, ["configMapRef", "secretRef"]);
    return ro ? material(ctx, ro, `${path}.${key}`, "inline", undefined, 0) : undefined;
  }
  const text = typeof v === "string" ? v : JSON.stringify(v);
  return material(ctx, { [key]: text }, path, key, check, maxChars);
}
