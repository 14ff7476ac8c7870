// Validation of a `notation` verifier: either the ImagePolicy's own form (level, override,
// trustedIdentities, trustStores) or a verbatim notation trust policy document.
import { errorMessage } from "../../base/errors.js";
import { parseTrustPolicyDocument } from "../notation/policy.js";
import {
  arr,
  type Ctx,
  describe,
  jsonMaterial,
  LIMITS,
  material,
  NAME_RE,
  type Obj,
  obj,
  oneOf,
  str,
} from "./fields.js";
import type {
  NotationAction,
  NotationCheckName,
  NotationDocumentVerifierSpec,
  NotationTrustStoreSpec,
  NotationVerifierSpec,
} from "./model.js";
import { parseCertificateBundle } from "./pem.js";

const NOTATION_CHECKS: NotationCheckName[] = [
  "integrity",
  "authenticity",
  "authenticTimestamp",
  "expiry",
  "revocation",
];

export const checkCertificates = (text: string): string | undefined => {
  const r = parseCertificateBundle(text);
  return "error" in r ? r.error : undefined;
};

export const checkNotationTrustPolicy = (text: string): string | undefined => {
  try {
    parseTrustPolicyDocument(JSON.parse(text));
    return undefined;
  } catch (e) {
    return e instanceof SyntaxError ? `not valid JSON (${e.message})` : errorMessage(e);
  }
};

export function validateNotation(
  ctx: Ctx,
  v: unknown,
  path: string,
): NotationVerifierSpec | NotationDocumentVerifierSpec | undefined {
  const o = obj(ctx, v, path, ["level", "override", "trustedIdentities", "trustStores", "trustPolicy"]);
  if (!o) return undefined;
  if (o.trustPolicy !== undefined) return notationDocument(ctx, o, path);
  const level =
    o.level === "skip"
      ? undefined
      : oneOf(ctx, o, "level", path, ["strict", "permissive", "audit"], "strict");
  if (o.level === "skip")
    ctx.add(`${path}.level`, 'level "skip" verifies nothing and is not allowed in an ImagePolicy');

  let override: NotationVerifierSpec["override"];
  if (o.override !== undefined) {
    const ov = obj(ctx, o.override, `${path}.override`, NOTATION_CHECKS);
    if (ov) {
      override = {};
      for (const check of NOTATION_CHECKS) {
        if (ov[check] === undefined) continue;
        if (check === "integrity") {
          ctx.add(`${path}.override.integrity`, "integrity cannot be overridden");
          continue;
        }
        const a = oneOf<NotationAction>(
          ctx,
          ov,
          check,
          `${path}.override`,
          ["enforce", "log", "skip"],
          undefined,
        );
        if (a) override[check] = a;
      }
    }
  }

  const ids = arr(ctx, o, "trustedIdentities", path, LIMITS.identities);
  const trustedIdentities: string[] = [];
  if (ids === undefined || ids.length === 0) {
    if (o.trustedIdentities === undefined || ids?.length === 0)
      ctx.add(`${path}.trustedIdentities`, 'required: "*" or "x509.subject: <DN>" entries');
  } else {
    for (const [i, id] of ids.entries()) {
      const at = `${path}.trustedIdentities[${i}]`;
      if (typeof id !== "string") ctx.add(at, `must be a string, got ${describe(id)}`);
      else if (id === "*" && ids.length > 1) ctx.add(at, '"*" must be the only trusted identity');
      else if (id !== "*" && !/^x509\.subject:\s*\S/.test(id))
        ctx.add(at, 'must be "*" or "x509.subject: <distinguished name>"');
      else trustedIdentities.push(id);
    }
  }

  const trustStores = notationStores(ctx, o, path, NAME_RE, "must be a lower-case DNS-style name");
  if (!level) return undefined;
  return { level, ...(override ? { override } : {}), trustedIdentities, trustStores };
}

/** `trustPolicy`: a verbatim trustpolicy.json (object or JSON text) or a Secret/ConfigMap reference. */
function notationDocument(ctx: Ctx, o: Obj, path: string): NotationDocumentVerifierSpec | undefined {
  for (const k of ["level", "override", "trustedIdentities"])
    if (o[k] !== undefined)
      ctx.add(`${path}.${k}`, "not allowed with trustPolicy (the trust policy document decides it)");
  const trustPolicy = jsonMaterial(ctx, o.trustPolicy, path, "trustPolicy", checkNotationTrustPolicy);
  const trustStores = notationStores(
    ctx,
    o,
    path,
    NOTATION_STORE_NAME_RE,
    "must match [a-zA-Z0-9_.-]+",
    false,
  );
  return trustPolicy ? { trustPolicy, trustStores } : undefined;
}

const NOTATION_STORE_NAME_RE = /^[a-zA-Z0-9_.-]{1,253}$/;

function notationStores(ctx: Ctx, o: Obj, path: string, nameRe: RegExp, nameRule: string, required = true) {
  const stores = arr(ctx, o, "trustStores", path, LIMITS.trustStores);
  const trustStores: NotationTrustStoreSpec[] = [];
  if (stores === undefined || stores.length === 0) {
    if (required && (o.trustStores === undefined || stores?.length === 0))
      ctx.add(`${path}.trustStores`, "at least one trust store is required");
  } else {
    const seen = new Set<string>();
    stores.forEach((s, i) => {
      const at = `${path}.trustStores[${i}]`;
      const so = obj(ctx, s, at, [
        "type",
        "name",
        "certificates",
        "secretRef",
        "configMapRef",
        "keyManagementProvider",
      ]);
      if (!so) return;
      const type = oneOf(ctx, so, "type", at, ["ca", "signingAuthority", "tsa"] as const, "ca");
      const name = str(ctx, so, "name", at, true);
      if (name !== undefined && !nameRe.test(name)) ctx.add(`${at}.name`, nameRule);
      if (type && name) {
        if (seen.has(`${type}:${name}`)) ctx.add(`${at}.name`, `duplicate trust store ${type}:${name}`);
        seen.add(`${type}:${name}`);
      }
      // certificates may be a list of PEM strings; normalise to one bundle.
      const so2: Obj = { ...so };
      if (Array.isArray(so.certificates)) {
        if (!so.certificates.every((c) => typeof c === "string")) {
          ctx.add(`${at}.certificates`, "must be a PEM string or a list of PEM strings");
          return;
        }
        so2.certificates = (so.certificates as string[]).join("\n");
      }
      const certificates = material(ctx, so2, at, "certificates", checkCertificates, LIMITS.pemChars, [
        "keyManagementProvider",
      ]);
      if (type && name && certificates) trustStores.push({ type, name, certificates });
    });
  }
  return trustStores;
}
