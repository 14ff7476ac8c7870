// Validation of a `cosign` verifier: public keys and keyless (trusted root, identities).
import { errorMessage } from "../../base/errors.js";
import {
  arr,
  bool,
  type Ctx,
  describe,
  isObj,
  jsonMaterial,
  LIMITS,
  material,
  type Obj,
  obj,
  str,
} from "./fields.js";
import {
  checkMirror,
  checkTufRoot,
  DEFAULT_REFRESH_SECONDS,
  embeddedRoot,
  MAX_REFRESH_SECONDS,
  MAX_ROOT_BYTES,
  MIN_REFRESH_SECONDS,
  normaliseMirror,
  PUBLIC_GOOD_MIRROR,
} from "../sigstore-trust/source.js";
import type {
  CosignIdentitySpec,
  CosignKeylessSpec,
  CosignKeySpec,
  CosignVerifierSpec,
  MaterialSource,
  TufTrustedRootSpec,
} from "./model.js";
import { parsePublicKeyPem } from "./pem.js";

export const checkPublicKey = (text: string): string | undefined => {
  const r = parsePublicKeyPem(text);
  return "error" in r ? r.error : undefined;
};

export const checkTrustedRoot = (text: string): string | undefined => {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return `not valid JSON (${errorMessage(e)})`;
  }
  if (!isObj(v)) return "a sigstore trusted root must be a JSON object";
  const mt = v.mediaType;
  if (typeof mt !== "string" || !mt.startsWith("application/vnd.dev.sigstore.trustedroot"))
    return 'not a sigstore trusted root (mediaType must be "application/vnd.dev.sigstore.trustedroot…")';
  return undefined;
};

/** `trustedRoot.tuf`: the trusted root from a TUF repository (mirror, initial root, interval). */
function tufTrustedRoot(ctx: Ctx, v: unknown, at: string): TufTrustedRootSpec | undefined {
  const o = obj(ctx, v ?? {}, at, ["mirror", "root", "refreshIntervalSeconds"]);
  if (!o) return undefined;
  const n = ctx.issues.length;
  const given = str(ctx, o, "mirror", at, false);
  const mirror = normaliseMirror(given ?? PUBLIC_GOOD_MIRROR);
  const bad = given === undefined ? undefined : checkMirror(given);
  if (bad) ctx.add(`${at}.mirror`, bad);
  let root: MaterialSource | undefined;
  if (o.root === undefined) {
    if (!bad && embeddedRoot(mirror) === undefined)
      ctx.add(
        `${at}.root`,
        `required for mirror ${mirror}: only the public-good instance's (${PUBLIC_GOOD_MIRROR}) initial TUF root ships with Tollgate`,
      );
  } else root = jsonMaterial(ctx, o.root, at, "root", checkTufRoot, MAX_ROOT_BYTES);
  let refreshIntervalSeconds = DEFAULT_REFRESH_SECONDS;
  const ri = o.refreshIntervalSeconds;
  if (ri !== undefined) {
    if (
      typeof ri !== "number" ||
      !Number.isInteger(ri) ||
      ri < MIN_REFRESH_SECONDS ||
      ri > MAX_REFRESH_SECONDS
    )
      ctx.add(
        `${at}.refreshIntervalSeconds`,
        `must be an integer between ${MIN_REFRESH_SECONDS} and ${MAX_REFRESH_SECONDS}, got ${JSON.stringify(ri)}`,
      );
    else refreshIntervalSeconds = ri;
  }
  if (ctx.issues.length > n) return undefined;
  return { mirror, ...(root ? { root } : {}), refreshIntervalSeconds };
}

function regexpField(ctx: Ctx, o: Obj, key: string, path: string): string | undefined {
  const v = str(ctx, o, key, path, false);
  if (v === undefined) return undefined;
  try {
    new RegExp(v);
  } catch (e) {
    ctx.add(`${path}.${key}`, `not a valid regular expression (${errorMessage(e)})`);
    return undefined;
  }
  return v;
}

export function validateCosign(ctx: Ctx, v: unknown, path: string): CosignVerifierSpec | undefined {
  const o = obj(ctx, v, path, ["keys", "keyless", "annotations"]);
  if (!o) return undefined;
  const out: CosignVerifierSpec = {};
  const keys = arr(ctx, o, "keys", path, LIMITS.keys);
  if (keys !== undefined) {
    const list: CosignKeySpec[] = [];
    keys.forEach((k, i) => {
      const at = `${path}.keys[${i}]`;
      const ko = obj(ctx, k, at, [
        "name",
        "pem",
        "secretRef",
        "configMapRef",
        "keyManagementProvider",
        "kms",
      ]);
      if (!ko) return;
      const name = str(ctx, ko, "name", at, false);
      const pem = material(ctx, ko, at, "pem", checkPublicKey, LIMITS.pemChars, [
        "keyManagementProvider",
        "kms",
      ]);
      if (pem) list.push({ ...(name !== undefined ? { name } : {}), pem });
    });
    if (keys.length === 0) ctx.add(`${path}.keys`, "must not be empty when given");
    out.keys = list;
  }
  if (o.keyless !== undefined) {
    const at = `${path}.keyless`;
    const ko = obj(ctx, o.keyless, at, ["trustedRoot", "identities", "requireTlog", "requireSct"]);
    if (ko) {
      let trustedRoot: MaterialSource | undefined;
      let tuf: TufTrustedRootSpec | undefined;
      const tr = ko.trustedRoot;
      if (tr === undefined) ctx.add(`${at}.trustedRoot`, "required (inline JSON, configMapRef or tuf)");
      else if (isObj(tr) && tr.tuf !== undefined) {
        const ro = obj(ctx, tr, `${at}.trustedRoot`, ["tuf"]);
        if (ro) tuf = tufTrustedRoot(ctx, ro.tuf, `${at}.trustedRoot.tuf`);
      } else trustedRoot = jsonMaterial(ctx, tr, at, "trustedRoot", checkTrustedRoot);
      const ids = arr(ctx, ko, "identities", at, LIMITS.identities);
      const identities: CosignIdentitySpec[] = [];
      if (ids === undefined || ids.length === 0) {
        if (ko.identities === undefined || ids?.length === 0)
          ctx.add(
            `${at}.identities`,
            "at least one identity is required (keyless without identities trusts anyone)",
          );
      } else {
        ids.forEach((id, i) => {
          const ip = `${at}.identities[${i}]`;
          const io = obj(ctx, id, ip, ["issuer", "issuerRegExp", "subject", "subjectRegExp"]);
          if (!io) return;
          const e: CosignIdentitySpec = {};
          const issuer = str(ctx, io, "issuer", ip, false);
          const issuerRegExp = regexpField(ctx, io, "issuerRegExp", ip);
          const subject = str(ctx, io, "subject", ip, false);
          const subjectRegExp = regexpField(ctx, io, "subjectRegExp", ip);
          if (
            issuer === undefined &&
            issuerRegExp === undefined &&
            io.issuer === undefined &&
            io.issuerRegExp === undefined
          )
            ctx.add(ip, "one of issuer, issuerRegExp is required");
          if (
            subject === undefined &&
            subjectRegExp === undefined &&
            io.subject === undefined &&
            io.subjectRegExp === undefined
          )
            ctx.add(ip, "one of subject, subjectRegExp is required");
          if (issuer !== undefined) e.issuer = issuer;
          if (issuerRegExp !== undefined) e.issuerRegExp = issuerRegExp;
          if (subject !== undefined) e.subject = subject;
          if (subjectRegExp !== undefined) e.subjectRegExp = subjectRegExp;
          identities.push(e);
        });
      }
      const requireTlog = bool(ctx, ko, "requireTlog", at, true);
      const requireSct = bool(ctx, ko, "requireSct", at, true);
      if (trustedRoot || tuf) {
        const keyless: CosignKeylessSpec = {
          ...(tuf ? { tuf } : { trustedRoot }),
          identities,
          requireTlog,
          requireSct,
        };
        out.keyless = keyless;
      }
    }
  }
  if (o.annotations !== undefined) {
    const ao = isObj(o.annotations) ? o.annotations : undefined;
    if (!ao) ctx.add(`${path}.annotations`, `must be a map of strings, got ${describe(o.annotations)}`);
    else {
      const annotations: Record<string, string> = {};
      for (const [k, val] of Object.entries(ao)) {
        if (typeof val !== "string")
          ctx.add(`${path}.annotations.${k}`, `must be a string, got ${describe(val)}`);
        else annotations[k] = val;
      }
      out.annotations = annotations;
    }
  }
  if (o.keys === undefined && o.keyless === undefined) ctx.add(path, "one of keys, keyless is required");
  return out;
}
