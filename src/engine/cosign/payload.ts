// The two payloads cosign signs: the legacy simple-signing JSON and the in-toto Statement
// inside a bundle's DSSE envelope. Parsing is typed; claim checks return a reason or null.
import { isSupportedDigest } from "../../base/digest.js";
import { EngineError } from "../errors.js";
import { canonicalRepository } from "../identity.js";
import type { CheckName } from "../types.js";
import { asArray, asObject, asString, asStringMap, parseJsonBytes } from "./json.js";
import { COSIGN_SIGN_PREDICATE, IN_TOTO_STATEMENT_V1, LIMITS, SIMPLESIGNING_TYPE } from "./types.js";

export interface SimpleSigning {
  dockerReference: string;
  manifestDigest: string;
  type: string;
  optional: Record<string, string>;
}

export function parseSimpleSigning(bytes: Uint8Array): SimpleSigning {
  const root = asObject(parseJsonBytes(bytes, "simple-signing payload"), "simple-signing payload");
  const critical = asObject(root.critical, "simple-signing critical");
  const identity = asObject(critical.identity, "simple-signing critical.identity");
  const image = asObject(critical.image, "simple-signing critical.image");
  const type = asString(critical.type, "simple-signing critical.type");
  if (type !== SIMPLESIGNING_TYPE) {
    throw new EngineError(
      "MALFORMED",
      `simple-signing payload has type "${type.slice(0, 80)}", not "${SIMPLESIGNING_TYPE}"`,
    );
  }
  return {
    dockerReference: asString(identity["docker-reference"], "simple-signing docker-reference"),
    manifestDigest: asString(image["docker-manifest-digest"], "simple-signing docker-manifest-digest"),
    type,
    optional: asStringMap(root.optional, "simple-signing optional"),
  };
}

export interface StatementSubject {
  name?: string;
  digest: Record<string, string>;
  annotations: Record<string, string>;
}

export interface Statement {
  type: string;
  predicateType: string;
  subjects: StatementSubject[];
}

export function parseStatement(bytes: Uint8Array): Statement {
  const root = asObject(parseJsonBytes(bytes, "in-toto statement"), "in-toto statement");
  const type = asString(root._type, "in-toto statement _type");
  if (type !== IN_TOTO_STATEMENT_V1 && type !== "https://in-toto.io/Statement/v0.1") {
    throw new EngineError("MALFORMED", `in-toto statement has unknown _type "${type.slice(0, 80)}"`);
  }
  const predicateType = asString(root.predicateType, "in-toto statement predicateType");
  const subjects = asArray(root.subject, "in-toto statement subject", LIMITS.maxStatementSubjects).map(
    (s, i) => {
      const o = asObject(s, `in-toto subject[${i}]`);
      const digest = asStringMap(o.digest, `in-toto subject[${i}].digest`);
      return {
        name: typeof o.name === "string" ? o.name : undefined,
        digest,
        annotations: asStringMap(o.annotations, `in-toto subject[${i}].annotations`),
      };
    },
  );
  return { type, predicateType, subjects };
}

/** Splits "sha256:<hex>" into [alg, hex]; lower-case hex only, as OCI digests are. */
export function splitDigest(d: string): [string, string] | undefined {
  if (!isSupportedDigest(d)) return undefined;
  const i = d.indexOf(":");
  return [d.slice(0, i), d.slice(i + 1)];
}

/** Missing/unequal required annotations, as one sentence; null when all present. */
export function annotationMismatch(
  have: Record<string, string>,
  want: Record<string, string> | undefined,
): string | null {
  if (!want) return null;
  const bad = Object.entries(want).filter(([k, v]) => have[k] !== v);
  if (bad.length === 0) return null;
  return `missing or different annotation${bad.length > 1 ? "s" : ""} ${bad.map(([k, v]) => `${k}=${v} (signed: ${have[k] === undefined ? "absent" : JSON.stringify(have[k])})`).join(", ")}`;
}

/** Claim check for a statement: a cosign signature predicate naming the subject digest. */
export function checkStatement(
  st: Statement,
  subjectDigest: string,
  want: Record<string, string> | undefined,
): { check: CheckName; reason: string } | null {
  if (st.predicateType !== COSIGN_SIGN_PREDICATE) {
    return {
      check: "payloadType",
      reason: `bundle carries predicate ${st.predicateType.slice(0, 120)}, not a cosign signature (${COSIGN_SIGN_PREDICATE})`,
    };
  }
  const parts = splitDigest(subjectDigest);
  if (!parts)
    return { check: "payloadDigest", reason: `subject digest ${subjectDigest} is not a valid digest` };
  const [alg, hex] = parts;
  const matching = st.subjects.filter((s) => s.digest[alg] === hex);
  if (matching.length === 0) {
    const named = st.subjects
      .flatMap((s) => Object.entries(s.digest).map(([a, h]) => `${a}:${h}`))
      .slice(0, 3);
    return {
      check: "payloadDigest",
      reason: `signed statement names ${named.join(", ") || "no digest"}, not ${subjectDigest}`,
    };
  }
  for (const s of matching) {
    if (annotationMismatch(s.annotations, want) === null) return null;
  }
  return {
    check: "annotations",
    reason: annotationMismatch(matching[0]?.annotations ?? {}, want) ?? "annotations do not match",
  };
}

/** Claim check for simple signing. `repository` set ⇒ docker-reference must name it. */
export function checkSimpleSigning(
  p: SimpleSigning,
  subjectDigest: string,
  want: Record<string, string> | undefined,
  repository: string | undefined,
): { check: CheckName; reason: string } | null {
  if (p.manifestDigest !== subjectDigest) {
    return {
      check: "payloadDigest",
      reason: `signed payload names ${p.manifestDigest.slice(0, 140)}, not ${subjectDigest}`,
    };
  }
  if (
    repository !== undefined &&
    normaliseRepository(p.dockerReference) !== normaliseRepository(repository)
  ) {
    return {
      check: "dockerReference",
      reason: `signed payload names repository ${p.dockerReference.slice(0, 200)}, not ${repository}`,
    };
  }
  const ann = annotationMismatch(p.optional, want);
  if (ann) return { check: "annotations", reason: ann };
  return null;
}

/** A reference's repository as a canonical identity (identity.ts); an unparsable name stays as given, lower-cased. */
export function normaliseRepository(ref: string): string {
  return canonicalRepository(ref) ?? ref.toLowerCase();
}
