// Verifying attestations against the policy's requirements. An envelope counts for a
// requirement only if (in this order) its statement has the required predicate type, its
// DSSE signature verifies with the required cosign verifier's keys (or keyless identities),
// its statement's subject names the image digest, and the requirement's conditions hold.
// The first three are verification (gatherEvidence: digest-bound, cacheable); conditions
// are a separate, synchronous step (chooseAttestations), so conditions that read the
// namespace or the image's name can run per request over cached evidence. The denial names
// the requirement and the furthest check any candidate reached, so "signed by someone else"
// and "built elsewhere" read differently.
import type { Bundle } from "@sigstore/bundle";
import type { CompiledCondition } from "../cel/index.js";
import { type ParsedBundle, pae, parseBundle } from "../cosign/bundle.js";
import { asArray, asObject, asString, decodeBase64, parseJsonBytes } from "../cosign/json.js";
import { prepareKeyless, verifyKeylessBundle } from "../cosign/keyless.js";
import { findSigner, loadKeys } from "../cosign/keys.js";
import { legacyKeylessDsseBundle } from "../cosign/legacy-keyless.js";
import { splitDigest } from "../cosign/payload.js";
import { ANN_CERTIFICATE, LIMITS, MT_IN_TOTO } from "../cosign/types.js";
import { EngineError, toEngineError } from "../errors.js";
import type { CosignConfig } from "../policy/model.js";
import type { AttestationSource, EnvelopeRef } from "./discover.js";
import { earliest, firstChange } from "./expiry.js";
import type {
  AttestationEvidence,
  AttestationOutcome,
  AttestationResult,
  Candidate,
  CompiledAttestation,
  CompiledConditionSpec,
  RequirementEvidence,
  VerifiedStatement,
} from "./types.js";

const STATEMENT_TYPES = new Set(["https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"]);

interface Envelope {
  ref: EnvelopeRef;
  payloadType: string;
  payload: Buffer;
  signatures: { sig: Buffer; hint?: string }[];
  bundle?: ParsedBundle;
  /** A legacy layer with certificate annotations: its keyless bundle, or why it is malformed. */
  legacyKeyless?: { bundle: Bundle } | { error: string };
  statement: { predicateType: string; subjects: Record<string, string>[]; predicate: unknown };
}

type Parsed =
  | { ok: true; env: Envelope }
  | { ok: false; transient: boolean; reason: string; ref: EnvelopeRef };

export interface AttestVerifyOptions {
  now: Date;
  signal?: AbortSignal;
  /** Variables every condition sees besides the statement's (image, signatures…). */
  baseVars: Record<string, unknown>;
  /** Horizon for expiry search (the positive cache TTL). */
  horizonMs: number;
}

export function conditionLabel(c: CompiledConditionSpec): string {
  return c.message ?? c.expression;
}

/** Evaluates conditions in order; the first that is false or fails to evaluate is returned. */
export function firstFailing(
  conds: CompiledConditionSpec[],
  vars: Record<string, unknown>,
  evaluated?: (c: CompiledConditionSpec) => void,
): { cond: CompiledConditionSpec; why: string } | undefined {
  for (const c of conds) {
    evaluated?.(c);
    const r = c.condition.evaluate(vars);
    // JSON quoting keeps an expression's own quotes readable in the one-line reason.
    const label = JSON.stringify(conditionLabel(c));
    if (!r.ok) return { cond: c, why: `condition ${label} could not be evaluated: ${r.error}` };
    if (!r.value) return { cond: c, why: `condition ${label} is false` };
  }
  return undefined;
}

/** When do all of `conds` stop holding (they hold at opts.now)? */
export function conditionsExpiry(
  conds: CompiledConditionSpec[],
  vars: (at: Date) => Record<string, unknown>,
  now: Date,
  horizonMs: number,
): Date | undefined {
  const timed = conds.filter((c) => c.condition.usesNow);
  if (timed.length === 0) return undefined;
  return firstChange((at) => firstFailing(timed, vars(at)) === undefined, now, horizonMs);
}

async function parseEnvelope(
  source: AttestationSource,
  ref: EnvelopeRef,
  signal?: AbortSignal,
): Promise<Parsed> {
  const fail = (reason: string, transient = false): Parsed => ({ ok: false, transient, reason, ref });
  if (typeof ref.layer.size !== "number" || ref.layer.size < 0 || ref.layer.size > LIMITS.maxLayerBytes)
    return fail(
      `attestation layer declares ${ref.layer.size} bytes, over the ${LIMITS.maxLayerBytes}-byte cap`,
    );
  let bytes: Uint8Array;
  try {
    bytes = await source.fetchBlob(ref.layer, signal);
  } catch (e) {
    const err = toEngineError(e, "REGISTRY_ERROR");
    if (err.code === "CANCELLED") throw err;
    return fail(`attestation ${ref.layer.digest} could not be fetched: ${err.message}`, err.transient);
  }
  try {
    let payloadType: string;
    let payload: Buffer;
    let signatures: Envelope["signatures"];
    let bundle: ParsedBundle | undefined;
    if (ref.format === "bundle") {
      bundle = parseBundle(bytes);
      payloadType = bundle.payloadType;
      payload = bundle.payload;
      signatures = [{ sig: bundle.signature, ...(bundle.hint ? { hint: bundle.hint } : {}) }];
    } else {
      const o = asObject(parseJsonBytes(bytes, "DSSE envelope"), "DSSE envelope");
      payloadType = asString(o.payloadType, "DSSE payloadType");
      payload = decodeBase64(asString(o.payload, "DSSE payload"), "DSSE payload");
      signatures = asArray(o.signatures, "DSSE signatures", 8).map((s, i) => ({
        sig: decodeBase64(
          asString(asObject(s, `DSSE signatures[${i}]`).sig, `DSSE signatures[${i}].sig`),
          "signature",
          16 * 1024,
        ),
      }));
      if (signatures.length === 0) throw new EngineError("MALFORMED", "DSSE envelope has no signature");
    }
    let legacyKeyless: Envelope["legacyKeyless"];
    const ann = ref.layer.annotations ?? {};
    if (ref.format === "legacy" && typeof ann[ANN_CERTIFICATE] === "string") {
      try {
        legacyKeyless = { bundle: legacyKeylessDsseBundle(ann, { payloadType, payload, signatures }) };
      } catch (e) {
        legacyKeyless = { error: toEngineError(e, "MALFORMED").message };
      }
    }
    if (payloadType !== MT_IN_TOTO)
      return fail(`DSSE payload type is ${payloadType.slice(0, 100)}, not ${MT_IN_TOTO}`);
    const st = asObject(parseJsonBytes(payload, "in-toto statement"), "in-toto statement");
    const type = asString(st._type, "in-toto statement _type");
    if (!STATEMENT_TYPES.has(type)) return fail(`in-toto statement has unknown _type ${type.slice(0, 80)}`);
    const subjects = asArray(st.subject, "in-toto subject", LIMITS.maxStatementSubjects).map((s, i) => {
      const d = asObject(asObject(s, `in-toto subject[${i}]`).digest, `in-toto subject[${i}].digest`);
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(d)) if (typeof v === "string") out[k] = v;
      return out;
    });
    return {
      ok: true,
      env: {
        ref,
        payloadType,
        payload,
        signatures,
        ...(bundle ? { bundle } : {}),
        ...(legacyKeyless ? { legacyKeyless } : {}),
        statement: {
          predicateType: asString(st.predicateType, "in-toto predicateType"),
          subjects,
          predicate: st.predicate ?? null,
        },
      },
    };
  } catch (e) {
    const err = toEngineError(e, "MALFORMED");
    if (err.code === "CANCELLED" || err.code === "INTERNAL") throw err;
    return fail(`attestation ${ref.layer.digest} is malformed: ${err.message}`);
  }
}

/** Signer of `env` under `cfg`, or the reason it has none. */
function signerOf(
  env: Envelope,
  cfg: CosignConfig,
  verifier: string,
): { signer: string; issuer?: string } | string {
  const keys = loadKeys(cfg.keys);
  // Keyless: a bundle with a certificate, or a legacy layer with certificate annotations
  // (as for legacy .sig, those are judged keyless only when the verifier has keyless trust).
  const legacy = cfg.keyless || keys.length === 0 ? env.legacyKeyless : undefined;
  if (env.bundle?.material === "certificate" || legacy) {
    if (!cfg.keyless) return `it is signed keylessly, but verifier ${verifier} has no keyless trust`;
    if (legacy && "error" in legacy) return `its keyless signature cannot be checked: ${legacy.error}`;
    const b = env.bundle?.bundle ?? (legacy as { bundle: Bundle }).bundle;
    const r = verifyKeylessBundle(prepareKeyless(cfg.keyless), b);
    if (!r.ok) return `its keyless signature is not trusted by verifier ${verifier}: ${r.reason}`;
    return { signer: r.subject, ...(r.issuer ? { issuer: r.issuer } : {}) };
  }
  if (keys.length === 0) return `verifier ${verifier} has no keys for a key-pair signature`;
  const data = pae(env.payloadType, env.payload);
  for (const s of env.signatures) {
    const k = findSigner(keys, data, s.sig, s.hint);
    if (k) return { signer: k.name };
  }
  return `it is not signed by any key of verifier ${verifier} (${keys.map((k) => k.name).join(", ")})`;
}

export interface GatherOptions {
  signal?: AbortSignal;
}

/**
 * Everything about the requirements that does not depend on a condition: per requirement,
 * the candidates (predicate type, signature and subject checked) and the answer when there
 * is none. Requirements without conditions keep only their first candidate.
 */
export async function gatherEvidence(
  source: AttestationSource,
  reqs: CompiledAttestation[],
  verifiers: ReadonlyMap<string, CosignConfig>,
  opts: GatherOptions = {},
): Promise<AttestationEvidence> {
  const parsed: Parsed[] = [];
  for (const ref of source.envelopes) parsed.push(await parseEnvelope(source, ref, opts.signal));
  const digestParts = splitDigest(source.subject.digest);
  const requirements: RequirementEvidence[] = [];

  for (const req of reqs) {
    const cfg = verifiers.get(req.verifier);
    if (!cfg) {
      requirements.push({
        name: req.name,
        candidates: [],
        miss: {
          result: "failed",
          reason: `verifier ${req.verifier} is not a cosign verifier of this policy`,
        },
      });
      continue;
    }
    // Best failure so far: a higher rank means the envelope got further.
    let best: { rank: number; reason: string; ref?: EnvelopeRef } | undefined;
    const note = (rank: number, reason: string, ref?: EnvelopeRef) => {
      if (!best || rank > best.rank) best = { rank, reason, ...(ref ? { ref } : {}) };
    };
    const candidates: Candidate[] = [];
    let transient: string | undefined;
    for (const p of parsed) {
      if (!p.ok) {
        if (p.transient) transient ??= p.reason;
        else if (p.ref.predicateTypeHint === req.predicateType) note(0, p.reason, p.ref);
        continue;
      }
      const env = p.env;
      if (env.statement.predicateType !== req.predicateType) continue;
      const who = signerOf(env, cfg, req.verifier);
      if (typeof who === "string") {
        note(1, `a ${env.ref.format} attestation (${env.ref.artifactDigest}) exists but ${who}`, env.ref);
        continue;
      }
      const named = digestParts
        ? env.statement.subjects.some((s) => s[digestParts[0]] === digestParts[1])
        : false;
      if (!named) {
        const names = env.statement.subjects
          .flatMap((s) => Object.entries(s).map(([a, h]) => `${a}:${h}`))
          .slice(0, 2);
        note(
          2,
          `the signed statement names ${names.join(", ") || "no digest"}, not ${source.subject.digest}`,
          env.ref,
        );
        continue;
      }
      candidates.push({
        artifactDigest: env.ref.artifactDigest,
        format: env.ref.format,
        signer: who.signer,
        ...(who.issuer ? { issuer: who.issuer } : {}),
        predicateType: env.statement.predicateType,
        predicate: env.statement.predicate,
      });
      if (req.conditions.length === 0) break;
    }
    const b = best as { rank: number; reason: string; ref?: EnvelopeRef } | undefined;
    // A transient fetch error outranks only failures that got nowhere (rank 0).
    const miss: RequirementEvidence["miss"] =
      transient && (!b || b.rank < 1)
        ? { result: "error", reason: transient }
        : {
            result: "failed",
            reason:
              b?.reason ??
              `no ${req.predicateType} attestation found${source.truncated ? " (discovery was capped)" : ""}`,
            ...(b?.ref ? { artifactDigest: b.ref.artifactDigest, format: b.ref.format } : {}),
          };
    requirements.push({ name: req.name, candidates, miss });
  }
  return { requirements };
}

export interface ChooseOptions {
  now: Date;
  /** Variables every condition sees besides the statement's (image, request, signatures…). */
  baseVars: Record<string, unknown>;
  /** Horizon for expiry search (the positive cache TTL). */
  horizonMs: number;
}

/**
 * Per requirement, the first candidate whose conditions hold for these variables; the
 * denial names the first candidate's false condition, or the miss when there is none.
 */
export function chooseAttestations(
  evidence: AttestationEvidence,
  reqs: CompiledAttestation[],
  opts: ChooseOptions,
): AttestationOutcome {
  const results: AttestationResult[] = [];
  const statements = new Map<string, VerifiedStatement>();
  let expiresAt: Date | undefined;
  let readNamespace = false;
  reqs.forEach((req, i) => {
    const base = { name: req.name, predicateType: req.predicateType, verifier: req.verifier };
    const ev = evidence.requirements[i];
    if (!ev || ev.name !== req.name)
      throw new EngineError("INTERNAL", `attestation evidence does not match requirement ${req.name}`);
    let firstBad: { why: string; c: Candidate } | undefined;
    let passed: Candidate | undefined;
    for (const c of ev.candidates) {
      const vars = (at: Date) => ({
        ...opts.baseVars,
        now: at,
        predicateType: c.predicateType,
        predicate: c.predicate,
        signer: c.signer,
      });
      const bad = firstFailing(req.conditions, vars(opts.now), (x) => {
        readNamespace ||= x.readsNamespace;
      });
      if (bad) {
        firstBad ??= { why: bad.why, c };
        continue;
      }
      passed = c;
      expiresAt = earliest(expiresAt, conditionsExpiry(req.conditions, vars, opts.now, opts.horizonMs));
      break;
    }
    if (passed) {
      results.push({
        ...base,
        result: "passed",
        reason: `${req.predicateType} attestation signed by ${passed.signer}`,
        artifactDigest: passed.artifactDigest,
        format: passed.format,
        signer: passed.signer,
        ...(passed.issuer ? { issuer: passed.issuer } : {}),
      });
      statements.set(req.name, {
        predicateType: passed.predicateType,
        predicate: passed.predicate,
        signer: passed.signer,
      });
    } else if (firstBad)
      results.push({
        ...base,
        result: "failed",
        reason: firstBad.why,
        artifactDigest: firstBad.c.artifactDigest,
        format: firstBad.c.format,
      });
    else results.push({ ...base, ...ev.miss });
  });
  return { results, statements, readNamespace, ...(expiresAt ? { expiresAt } : {}) };
}

/** gatherEvidence then chooseAttestations: one verification, conditions included. */
export async function verifyAttestations(
  source: AttestationSource,
  reqs: CompiledAttestation[],
  verifiers: ReadonlyMap<string, CosignConfig>,
  opts: AttestVerifyOptions,
): Promise<AttestationOutcome> {
  const evidence = await gatherEvidence(source, reqs, verifiers, opts.signal ? { signal: opts.signal } : {});
  return chooseAttestations(evidence, reqs, opts);
}

export type { CompiledCondition };
