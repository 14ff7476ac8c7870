// Keyless (Fulcio certificate + Rekor entry) verification, offline against a configured
// trusted_root.json. The cryptography — chain to the Fulcio CA at the log/TSA time, SCTs,
// tlog inclusion (SET and Merkle proof), tlog body vs. envelope, DSSE signature — is
// @sigstore/verify's; this module only adds the identity policy and typed reasons.
import { errorMessage } from "../../base/errors.js";
import { isRecord } from "../../base/record.js";
import type { Bundle } from "@sigstore/bundle";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import { type Signer, type TrustMaterial, toSignedEntity, toTrustMaterial, Verifier } from "@sigstore/verify";
import { EngineError } from "../errors.js";
import type { CheckName } from "../types.js";
import type { ParsedBundle } from "./bundle.js";
import { type CosignIdentity, type CosignKeylessConfig, LIMITS } from "./types.js";

export interface PreparedKeyless {
  trust: TrustMaterial;
  identities: CompiledIdentity[];
  requireTlog: boolean;
  requireSct: boolean;
}

interface CompiledIdentity {
  issuer?: string;
  issuerRe?: RegExp;
  subject?: string;
  subjectRe?: RegExp;
  text: string;
}

const prepared = new WeakMap<CosignKeylessConfig, PreparedKeyless>();

export function prepareKeyless(cfg: CosignKeylessConfig): PreparedKeyless {
  const hit = prepared.get(cfg);
  if (hit) return hit;
  if (cfg.trustedRoot === undefined && cfg.tuf) {
    // The engine puts the TUF-fetched root in place before verifiers run (sigstore-trust/resolve.ts).
    throw new EngineError(
      "TRUST_ROOT_UNAVAILABLE",
      `the trusted root comes from TUF mirror ${cfg.tuf.mirror}, but no TUF client is configured here`,
    );
  }
  const p: PreparedKeyless = {
    trust: loadTrustedRoot(cfg.trustedRoot),
    identities: compileIdentities(cfg.identities),
    requireTlog: cfg.requireTlog ?? true,
    requireSct: cfg.requireSct ?? true,
  };
  prepared.set(cfg, p);
  return p;
}

export function loadTrustedRoot(root: unknown): TrustMaterial {
  if (!isRecord(root)) throw new EngineError("INVALID_CONFIG", "trusted root is not a JSON object");
  const mt = root.mediaType;
  if (typeof mt !== "string" || !mt.startsWith("application/vnd.dev.sigstore.trustedroot")) {
    throw new EngineError("INVALID_CONFIG", "trusted root has no Sigstore trustedroot mediaType");
  }
  for (const f of ["certificateAuthorities", "tlogs", "ctlogs", "timestampAuthorities"]) {
    const v = root[f];
    if (v !== undefined && (!Array.isArray(v) || v.length > 256)) {
      throw new EngineError(
        "INVALID_CONFIG",
        `trusted root field ${f} is not a list (of at most 256 entries)`,
      );
    }
  }
  if (!Array.isArray(root.certificateAuthorities) || root.certificateAuthorities.length === 0) {
    throw new EngineError(
      "INVALID_CONFIG",
      "trusted root lists no certificate authority; keyless verification needs one",
    );
  }
  try {
    return toTrustMaterial(TrustedRoot.fromJSON(root));
  } catch (e) {
    throw new EngineError(
      "INVALID_CONFIG",
      `trusted root could not be loaded: ${errorMessage(e)}`,
      {
        cause: e,
      },
    );
  }
}

function compileIdentities(ids: CosignIdentity[]): CompiledIdentity[] {
  if (!Array.isArray(ids) || ids.length === 0) {
    throw new EngineError(
      "INVALID_CONFIG",
      "keyless verification needs at least one identity (issuer and subject)",
    );
  }
  if (ids.length > LIMITS.maxIdentities)
    throw new EngineError("INVALID_CONFIG", `more than ${LIMITS.maxIdentities} identities`);
  return ids.map((raw, i) => {
    if (!isRecord(raw)) throw new EngineError("INVALID_CONFIG", `identity[${i}] is not an object`);
    const out: CompiledIdentity = { text: "" };
    for (const k of ["issuer", "issuerRegExp", "subject", "subjectRegExp"] as const) {
      if (raw[k] !== undefined && (typeof raw[k] !== "string" || raw[k] === "")) {
        throw new EngineError("INVALID_CONFIG", `identity[${i}].${k} must be a non-empty string`);
      }
    }
    const id = raw as CosignIdentity;
    // Like cosign, refuse "any certificate from this CA": both sides must be constrained.
    if (id.issuer === undefined && id.issuerRegExp === undefined) {
      throw new EngineError("INVALID_CONFIG", `identity[${i}] needs issuer or issuerRegExp`);
    }
    if (id.subject === undefined && id.subjectRegExp === undefined) {
      throw new EngineError("INVALID_CONFIG", `identity[${i}] needs subject or subjectRegExp`);
    }
    out.issuer = id.issuer;
    out.subject = id.subject;
    out.issuerRe = id.issuerRegExp === undefined ? undefined : compileRe(id.issuerRegExp, i, "issuerRegExp");
    out.subjectRe =
      id.subjectRegExp === undefined ? undefined : compileRe(id.subjectRegExp, i, "subjectRegExp");
    out.text = [
      id.issuer && `issuer=${id.issuer}`,
      id.issuerRegExp && `issuer~/${id.issuerRegExp}/`,
      id.subject && `subject=${id.subject}`,
      id.subjectRegExp && `subject~/${id.subjectRegExp}/`,
    ]
      .filter(Boolean)
      .join(" ");
    return out;
  });
}

function compileRe(src: string, i: number, field: string): RegExp {
  if (src.length > 1024)
    throw new EngineError("INVALID_CONFIG", `identity[${i}].${field} is longer than 1024 characters`);
  try {
    return new RegExp(src, "u");
  } catch (e) {
    throw new EngineError("INVALID_CONFIG", `identity[${i}].${field} is not a valid regular expression`, {
      cause: e,
    });
  }
}

export type KeylessResult =
  | { ok: true; subject: string; issuer: string; signingTime?: string; tlogEntries: number }
  | { ok: false; check: CheckName; reason: string; subject?: string; issuer?: string };

export function verifyKeyless(p: PreparedKeyless, pb: ParsedBundle): KeylessResult {
  return verifyKeylessBundle(p, pb.bundle);
}

/** Any keyless bundle; `artifact` is the signed bytes of a message-signature bundle. */
export function verifyKeylessBundle(p: PreparedKeyless, bundle: Bundle, artifact?: Buffer): KeylessResult {
  const tlogEntries = bundle.verificationMaterial.tlogEntries;
  if (p.requireTlog && tlogEntries.length === 0) {
    return {
      ok: false,
      check: "tlog",
      reason: "the bundle has no transparency log entry and the policy requires one",
    };
  }
  const verifier = new Verifier(p.trust, {
    tlogThreshold: p.requireTlog ? 1 : 0,
    ctlogThreshold: p.requireSct ? 1 : 0,
    // A Fulcio certificate lives minutes: it is checked at a verified log or TSA time.
    timestampThreshold: 1,
  });
  let signer: Signer;
  try {
    const entity = toSignedEntity(bundle, artifact);
    signer = verifier.verify(entity);
  } catch (e) {
    return { ok: false, ...classifySigstoreError(e) };
  }
  const subject = signer.identity?.subjectAlternativeName ?? "";
  const issuer = signer.identity?.extensions?.issuer ?? "";
  const match = p.identities.find(
    (id) =>
      (id.issuer === undefined || id.issuer === issuer) &&
      (id.issuerRe === undefined || id.issuerRe.test(issuer)) &&
      (id.subject === undefined || id.subject === subject) &&
      (id.subjectRe === undefined || id.subjectRe.test(subject)),
  );
  if (!match) {
    return {
      ok: false,
      check: "trustedIdentity",
      reason: `certificate identity subject=${subject || "(none)"} issuer=${issuer || "(none)"} matches none of: ${p.identities.map((i) => i.text).join("; ")}`,
      subject,
      issuer,
    };
  }
  const times = tlogEntries
    .map((t) => Number(t.integratedTime))
    .filter((n) => Number.isFinite(n) && n > 0)
    .sort((a, b) => a - b);
  const first = times[0];
  return {
    ok: true,
    subject,
    issuer,
    signingTime: first === undefined ? undefined : new Date(first * 1000).toISOString(),
    tlogEntries: tlogEntries.length,
  };
}

function classifySigstoreError(e: unknown): { check: CheckName; reason: string } {
  const code = (e as { code?: unknown })?.code;
  const msg = errorMessage(e);
  switch (code) {
    case "TLOG_ERROR":
    case "TLOG_INCLUSION_PROOF_ERROR":
    case "TLOG_INCLUSION_PROMISE_ERROR":
    case "TLOG_MISSING_INCLUSION_ERROR":
    case "TLOG_BODY_ERROR":
      return { check: "tlog", reason: `transparency log entry rejected: ${msg}` };
    case "CERTIFICATE_ERROR":
      return /SCT/i.test(msg)
        ? { check: "sct", reason: `certificate transparency (SCT) check failed: ${msg}` }
        : {
            check: "certificate",
            reason: `certificate does not chain to the trusted root at signing time: ${msg}`,
          };
    case "TIMESTAMP_ERROR":
      return {
        check: "timestamp",
        reason: `no verified signing time (log entry or RFC 3161 timestamp): ${msg}`,
      };
    case "SIGNATURE_ERROR":
      return { check: "authenticity", reason: "signature does not verify with the certificate's key" };
    case "PUBLIC_KEY_ERROR":
      return { check: "authenticity", reason: msg };
    default:
      // Malformed certificates and proofs surface from the parsers as plain errors.
      return { check: "format", reason: `keyless material could not be processed: ${msg.slice(0, 200)}` };
  }
}
