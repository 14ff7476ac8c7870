// verifyCosign: one SignatureCheck per cosign signature artifact (per simple-signing layer
// for the legacy format) found for the subject. Content problems are verdicts ("failed"
// with a reason); only transient fetch problems are "error"; cancellation throws.
import { EngineError, toEngineError } from "../errors.js";
import type { ArtifactSource, CheckName, Descriptor, DiscoveredArtifact, SignatureCheck } from "../types.js";
import { type ParsedBundle, pae, parseBundle } from "./bundle.js";
import { decodeBase64 } from "./json.js";
import { type PreparedKeyless, prepareKeyless, verifyKeyless, verifyKeylessBundle } from "./keyless.js";
import { findSigner, loadKeys, type TrustedKey } from "./keys.js";
import { legacyKeylessBundle } from "./legacy-keyless.js";
import {
  checkSimpleSigning,
  checkStatement,
  normaliseRepository,
  parseSimpleSigning,
  parseStatement,
} from "./payload.js";
import {
  ANN_CERTIFICATE,
  ANN_SIGNATURE,
  type CosignConfig,
  LIMITS,
  MT_BUNDLE_V03,
  MT_COSIGN_ARTIFACT_SIG,
  MT_IN_TOTO,
  MT_SIMPLESIGNING,
  type VerifyCosignOptions,
} from "./types.js";

export type CosignArtifactKind = "bundle" | "simplesigning";

/** Which cosign format an artifact is, or undefined when it is not a cosign signature. */
export function classifyCosignArtifact(a: DiscoveredArtifact): CosignArtifactKind | undefined {
  const layers = Array.isArray(a.manifest?.layers) ? a.manifest.layers : [];
  if (a.artifactType === MT_BUNDLE_V03 || layers.some((l) => l?.mediaType === MT_BUNDLE_V03)) return "bundle";
  if (
    a.artifactType === MT_COSIGN_ARTIFACT_SIG ||
    a.source === "cosign-tag" ||
    layers.some((l) => l?.mediaType === MT_SIMPLESIGNING)
  ) {
    return "simplesigning";
  }
  return undefined;
}

interface Ctx {
  source: ArtifactSource;
  cfg: CosignConfig;
  keys: TrustedKey[];
  keyless: PreparedKeyless | undefined;
  repository: string | undefined;
  opts: VerifyCosignOptions;
}

export async function verifyCosign(
  source: ArtifactSource,
  cfg: CosignConfig,
  opts: VerifyCosignOptions,
): Promise<SignatureCheck[]> {
  const keys = loadKeys(cfg.keys);
  const keyless = cfg.keyless === undefined ? undefined : prepareKeyless(cfg.keyless);
  if (keys.length === 0 && keyless === undefined) {
    throw new EngineError(
      "INVALID_CONFIG",
      `cosign verifier ${opts.verifierName} has neither keys nor keyless identities`,
    );
  }
  validateAnnotations(cfg.annotations);
  const ctx: Ctx = {
    source,
    cfg,
    keys,
    keyless,
    repository: cfg.requireDockerReference ? normaliseRepository(source.subject.reference) : undefined,
    opts,
  };
  throwIfAborted(opts.signal);

  const found = source.artifacts
    .map((a) => ({ a, kind: classifyCosignArtifact(a) }))
    .filter((x): x is { a: DiscoveredArtifact; kind: CosignArtifactKind } => x.kind !== undefined);
  if (found.length === 0) {
    return [
      {
        verifier: opts.verifierName,
        kind: "cosign",
        result: "failed",
        check: "presence",
        reason: "no cosign signature found",
      },
    ];
  }
  const checks: SignatureCheck[] = [];
  for (const { a, kind } of found.slice(0, LIMITS.maxArtifacts)) {
    throwIfAborted(opts.signal);
    if (kind === "bundle") checks.push(await checkBundleArtifact(ctx, a));
    else checks.push(...(await checkSimpleSigningArtifact(ctx, a)));
  }
  if (found.length > LIMITS.maxArtifacts) {
    checks.push({
      verifier: opts.verifierName,
      kind: "cosign",
      result: "failed",
      check: "limits",
      reason: `${found.length - LIMITS.maxArtifacts} more cosign artifacts were not examined (cap ${LIMITS.maxArtifacts})`,
    });
  }
  return checks;
}

function validateAnnotations(a: unknown): void {
  if (a === undefined) return;
  if (
    a === null ||
    typeof a !== "object" ||
    Array.isArray(a) ||
    Object.values(a).some((v) => typeof v !== "string")
  ) {
    throw new EngineError("INVALID_CONFIG", "cosign annotations must be a map of strings");
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new EngineError("CANCELLED", "cosign verification was cancelled");
}

function base(ctx: Ctx, a: DiscoveredArtifact, details: Record<string, unknown>) {
  return {
    verifier: ctx.opts.verifierName,
    kind: "cosign" as const,
    artifactDigest: a.digest,
    artifactType: a.artifactType,
    details: { source: a.source, ...details },
  };
}

/** Fetch result: bytes, or the check to report instead. Cancellation propagates. */
async function fetchLayer(
  ctx: Ctx,
  desc: Descriptor,
  what: string,
): Promise<{ bytes: Uint8Array } | { result: "failed" | "error"; check: CheckName; reason: string }> {
  if (typeof desc.size !== "number" || desc.size < 0 || desc.size > LIMITS.maxLayerBytes) {
    return {
      result: "failed",
      check: "limits",
      reason: `${what} declares ${desc.size} bytes, over the ${LIMITS.maxLayerBytes}-byte cap`,
    };
  }
  throwIfAborted(ctx.opts.signal);
  try {
    return { bytes: await ctx.source.fetchBlob(desc, ctx.opts.signal) };
  } catch (e) {
    const err = toEngineError(e, "REGISTRY_ERROR");
    if (err.code === "CANCELLED") throw err;
    if (err.transient)
      return { result: "error", check: "fetch", reason: `${what} could not be fetched: ${err.message}` };
    return {
      result: "failed",
      check: err.code === "DIGEST_MISMATCH" ? "integrity" : "fetch",
      reason: `${what} could not be used: ${err.message}`,
    };
  }
}

function contentFailure(e: unknown): { check: CheckName; reason: string } {
  const err = toEngineError(e, "MALFORMED");
  if (err.code === "CANCELLED" || err.code === "INTERNAL") throw err;
  return { check: "format", reason: err.message };
}

async function checkSimpleSigningArtifact(ctx: Ctx, a: DiscoveredArtifact): Promise<SignatureCheck[]> {
  const layers = (Array.isArray(a.manifest?.layers) ? a.manifest.layers : []).filter(
    (l) => l?.mediaType === MT_SIMPLESIGNING,
  );
  if (layers.length === 0) {
    return [
      {
        ...base(ctx, a, { format: "simplesigning" }),
        result: "failed",
        check: "format",
        reason: "cosign signature manifest has no simple-signing layer",
      },
    ];
  }
  if (layers.length > LIMITS.maxLayersPerManifest) {
    return [
      {
        ...base(ctx, a, { format: "simplesigning" }),
        result: "failed",
        check: "limits",
        reason: `cosign signature manifest has ${layers.length} layers, more than ${LIMITS.maxLayersPerManifest}`,
      },
    ];
  }
  const out: SignatureCheck[] = [];
  for (const layer of layers) out.push(await checkSimpleSigningLayer(ctx, a, layer));
  return out;
}

async function checkSimpleSigningLayer(
  ctx: Ctx,
  a: DiscoveredArtifact,
  layer: Descriptor,
): Promise<SignatureCheck> {
  const b = base(ctx, a, { format: "simplesigning", layer: layer.digest });
  const fail = failer(b);
  const ann = layer.annotations ?? {};
  const sigText = ann[ANN_SIGNATURE];
  if (typeof sigText !== "string")
    return fail("format", `simple-signing layer has no ${ANN_SIGNATURE} annotation`);
  let sig: Buffer;
  try {
    sig = decodeBase64(sigText, "signature annotation", 16 * 1024);
  } catch (e) {
    return fail("format", contentFailure(e).reason);
  }
  if (typeof ann[ANN_CERTIFICATE] === "string" && ctx.keyless)
    return checkLegacyKeylessLayer(ctx, layer, sig, b);
  if (ctx.keys.length === 0) {
    return fail(
      "authenticity",
      typeof ann[ANN_CERTIFICATE] === "string"
        ? "keyless legacy (simple-signing) signature, but no keyless trust is configured"
        : "legacy simple-signing signature, but no cosign keys are configured",
    );
  }
  const got = await fetchLayer(ctx, layer, "simple-signing payload");
  if (!("bytes" in got)) return { ...b, result: got.result, check: got.check, reason: got.reason };
  const signer = findSigner(ctx.keys, got.bytes, sig);
  if (!signer)
    return fail(
      "authenticity",
      `signature does not verify with any configured key (${ctx.keys.map((k) => k.name).join(", ")})`,
    );
  const claims = simpleSigningClaims(ctx, got.bytes);
  if (claims) return { ...fail(claims.check, claims.reason), signer: signer.name };
  return {
    ...b,
    result: "passed",
    check: "authenticity",
    reason: `simple-signing payload for ${ctx.source.subject.digest} signed by key ${signer.name}`,
    signer: signer.name,
  };
}

/** A failed check on top of the artifact's base fields. */
function failer(b: ReturnType<typeof base>) {
  return (check: CheckName, reason: string, extra: Partial<SignatureCheck> = {}): SignatureCheck => ({
    ...b,
    result: "failed",
    check,
    reason,
    ...extra,
  });
}

/** The payload's claims (digest, annotations); unreadable content is a format failure. */
function payloadClaims(check: () => { check: CheckName; reason: string } | null) {
  try {
    return check();
  } catch (e) {
    return contentFailure(e);
  }
}

function simpleSigningClaims(ctx: Ctx, payload: Uint8Array) {
  return payloadClaims(() =>
    checkSimpleSigning(
      parseSimpleSigning(payload),
      ctx.source.subject.digest,
      ctx.cfg.annotations,
      ctx.repository,
    ),
  );
}

/** A legacy keyless layer: certificate + Rekor bundle (+ timestamp) from its annotations. */
async function checkLegacyKeylessLayer(
  ctx: Ctx,
  layer: Descriptor,
  sig: Buffer,
  b: ReturnType<typeof base>,
): Promise<SignatureCheck> {
  const fail = failer(b);
  const got = await fetchLayer(ctx, layer, "simple-signing payload");
  if (!("bytes" in got)) return { ...b, result: got.result, check: got.check, reason: got.reason };
  let r: ReturnType<typeof verifyKeylessBundle>;
  try {
    const bundle = legacyKeylessBundle(layer.annotations ?? {}, got.bytes, sig);
    r = verifyKeylessBundle(ctx.keyless!, bundle, Buffer.from(got.bytes));
  } catch (e) {
    return fail("format", contentFailure(e).reason);
  }
  if (!r.ok) return fail(r.check, r.reason, { signer: r.subject, issuer: r.issuer });
  const identity = { signer: r.subject, issuer: r.issuer, signingTime: r.signingTime };
  const claims = simpleSigningClaims(ctx, got.bytes);
  if (claims) return fail(claims.check, claims.reason, identity);
  return {
    ...b,
    ...identity,
    result: "passed",
    check: "trustedIdentity",
    reason: `simple-signing payload for ${ctx.source.subject.digest} signed by ${r.subject} (issuer ${r.issuer})`,
  };
}

async function checkBundleArtifact(ctx: Ctx, a: DiscoveredArtifact): Promise<SignatureCheck> {
  const b = base(ctx, a, { format: "bundle-v0.3" });
  const fail = failer(b);
  const layers = (Array.isArray(a.manifest?.layers) ? a.manifest.layers : []).filter(
    (l) => l?.mediaType === MT_BUNDLE_V03,
  );
  if (layers.length !== 1 || layers[0] === undefined) {
    return fail(
      "format",
      `sigstore bundle manifest has ${layers.length} bundle layers, expected exactly one`,
    );
  }
  const got = await fetchLayer(ctx, layers[0], "sigstore bundle");
  if (!("bytes" in got)) return { ...b, result: got.result, check: got.check, reason: got.reason };
  let pb: ParsedBundle;
  try {
    pb = parseBundle(got.bytes);
  } catch (e) {
    return fail("format", contentFailure(e).reason);
  }
  if (pb.payloadType !== MT_IN_TOTO)
    return fail("format", `DSSE payload type is ${pb.payloadType.slice(0, 100)}, not ${MT_IN_TOTO}`);

  let identity: Partial<SignatureCheck>;
  if (pb.material === "public-key") {
    if (ctx.keys.length === 0)
      return fail("authenticity", "key-pair bundle signature, but no cosign keys are configured");
    const signer = findSigner(ctx.keys, pae(pb.payloadType, pb.payload), pb.signature, pb.hint);
    if (!signer)
      return fail(
        "authenticity",
        `signature does not verify with any configured key (${ctx.keys.map((k) => k.name).join(", ")})`,
      );
    identity = { signer: signer.name };
  } else {
    if (!ctx.keyless)
      return fail("authenticity", "keyless (certificate) bundle, but no keyless trust is configured");
    const r = verifyKeyless(ctx.keyless, pb);
    if (!r.ok) return fail(r.check, r.reason, { signer: r.subject, issuer: r.issuer });
    identity = { signer: r.subject, issuer: r.issuer, signingTime: r.signingTime };
  }
  const claims = payloadClaims(() =>
    checkStatement(parseStatement(pb.payload), ctx.source.subject.digest, ctx.cfg.annotations),
  );
  if (claims) return fail(claims.check, claims.reason, identity);
  return {
    ...b,
    ...identity,
    result: "passed",
    check: pb.material === "public-key" ? "authenticity" : "trustedIdentity",
    reason:
      pb.material === "public-key"
        ? `cosign bundle for ${ctx.source.subject.digest} signed by key ${identity.signer}`
        : `cosign bundle for ${ctx.source.subject.digest} signed by ${identity.signer} (issuer ${identity.issuer})`,
  };
}
