// `tollgate verify IMAGE`: the verdict the agent would give for IMAGE, computed here with the
// same engine — the digest resolved from the registry (unless given), the policy taken from
// a file or selected for a namespace through the configured policy source.

import { errorMessage } from "../base/errors.js";
import { type AgentConfig, ConfigError, defaultConfig, loadConfig } from "../config/agent.js";
import { ExemptImages } from "../decision/exempt.js";
import { createKeyProviders } from "../decision/key-providers.js";
import { createPolicySource, startSynced } from "../decision/wiring.js";
import { isEngineError, toEngineError } from "../engine/errors.js";
import { classifyCriImage, storedName } from "../engine/identity.js";
import { createEngine, type KeyProviders, TufTrustedRoots, userTufCache } from "../engine/index.js";
import { compilePolicy } from "../engine/policy/compile.js";
import { isPolicyValidationError } from "../engine/policy/errors.js";
import type { CompiledPolicy } from "../engine/policy/model.js";
import { isValidDigest } from "../engine/reference.js";
import { buildCredentialResolver } from "../engine/registry/credentials/index.js";
import type { Outcome, Verdict } from "../engine/types.js";
import type { PolicySource, Selection, SourceLogger } from "../policy-source/types.js";
import {
  bool,
  type CommandSpec,
  EXIT,
  list,
  OUTPUT_FLAG,
  type Parsed,
  runCommand,
  stdio,
  str,
  UsageError,
} from "./args.js";
import { json, shortDigest, table } from "./output.js";
import { docLabel, fileTrustResolver, readDocs } from "./policy-file.js";

export const verifySpec: CommandSpec = {
  name: "tollgate verify",
  usage: "tollgate verify IMAGE [--namespace NS] [--config FILE | --policy FILE] [flags]",
  summary:
    "Verifies IMAGE against an ImagePolicy and prints the verdict report. The policy is either\n" +
    "read from a file (--policy) or selected the way the agent selects it: the namespace's\n" +
    "tollgate.dev/policy annotation, else the default policy, through the policy source named\n" +
    "in the agent configuration (--config; --namespace omitted = the default policy).",
  positionals: { min: 1, max: 1, name: "IMAGE" },
  flags: [
    {
      name: "policy",
      type: "string",
      value: "FILE",
      help: "ImagePolicy file (YAML/JSON; may also hold the Secrets/ConfigMaps it references)",
    },
    {
      name: "policy-name",
      type: "string",
      value: "NAME",
      help: "which ImagePolicy of --policy FILE to use when it holds several",
    },
    {
      name: "namespace",
      type: "string",
      value: "NS",
      short: "n",
      help: "select the policy for this namespace (needs the agent configuration)",
    },
    {
      name: "config",
      type: "string",
      value: "FILE",
      help: "agent configuration (default $TOLLGATE_CONFIG, else /etc/tollgate/agent.yaml)",
    },
    {
      name: "digest",
      type: "string",
      value: "DIGEST",
      help: "use this top-level digest (sha256:…) instead of resolving IMAGE in the registry",
    },
    OUTPUT_FLAG,
    {
      name: "certs-dir",
      type: "string",
      value: "DIR",
      help: "containerd hosts directory (default: the agent configuration's, else /etc/containerd/certs.d)",
    },
    { name: "docker-config", type: "list", value: "FILE", help: "Docker-style credentials file" },
    {
      name: "timeout",
      type: "string",
      value: "SECONDS",
      help: "give up verifying after this long (default 30)",
    },
    { name: "quiet", type: "boolean", help: "no progress messages on stderr" },
  ],
  details: `Exit codes:
  0  allowed (verified, not governed, exempt, or allowed by Audit mode / break-glass)
  1  denied
  2  usage or configuration error (bad flags, unreadable or invalid policy/config file)
  3  the verification could not complete (registry unreachable, timeout, no usable policy);
     the report says what the failure policy would answer`,
};

type Io = typeof stdio;

export function verifyMain(argv: readonly string[], io: Io = stdio): Promise<number> {
  return runCommand(verifySpec, argv, (p) => verify(p, io), io);
}

const silent: SourceLogger = { info() {}, warn() {}, error() {} };

async function verify(p: Parsed, io: Io): Promise<number> {
  const image = p.positionals[0]!;
  const quiet = bool(p, "quiet");
  const progress = (m: string) => {
    if (!quiet) io.err(`tollgate verify: ${m}\n`);
  };
  const policyFile = str(p, "policy");
  const namespace = str(p, "namespace");
  const configPath = str(p, "config");
  if (policyFile && namespace)
    throw new UsageError(
      "--policy and --namespace cannot be combined (a policy file is not selected by namespace)",
    );
  if (str(p, "policy-name") && !policyFile) throw new UsageError("--policy-name needs --policy");
  if (!policyFile && !namespace && !configPath)
    throw new UsageError("say which policy: --policy FILE, or --namespace NS (and/or --config FILE)");
  let reference: string;
  try {
    // containerd's spelling: short names completed, a tag beside a digest dropped.
    const c = classifyCriImage(image);
    if (c.kind === "id" || c.kind === "id-prefix")
      throw new UsageError(
        `${image} is an image ID; give the image's name (registry/repository[:tag][@digest])`,
      );
    reference = storedName(image);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(toEngineError(e).message);
  }
  const givenDigest = str(p, "digest");
  if (givenDigest !== undefined && !isValidDigest(givenDigest))
    throw new UsageError(`--digest must be sha256:<64 hex> or sha512:<128 hex>, got "${givenDigest}"`);
  const timeoutText = str(p, "timeout");
  const timeoutMs = timeoutText === undefined ? 30_000 : Number(timeoutText) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > 600_000)
    throw new UsageError(`--timeout must be a number of seconds between 0 and 600, got "${timeoutText}"`);

  // Agent configuration: needed to select by namespace; with --policy only for registry settings.
  let cfg: AgentConfig | undefined;
  if (!policyFile || configPath) {
    try {
      cfg = await loadConfig({ ...(configPath ? { path: configPath } : {}) });
    } catch (e) {
      if (e instanceof ConfigError) throw new UsageError(e.message);
      throw e;
    }
  }
  const dockerConfigFiles =
    list(p, "docker-config").length > 0 ? list(p, "docker-config") : (cfg?.registry.dockerConfigs ?? []);
  const engine = createEngine({
    registry: {
      hostsDir: str(p, "certs-dir") ?? (cfg ?? defaultConfig()).registry.certsDir,
      dockerConfigFiles,
      // The agent's credential providers, so `verify` sees what the agent sees.
      credentialResolver: buildCredentialResolver(cfg?.registry.credentialProviders ?? [], dockerConfigFiles),
    },
    verificationTimeoutMs: timeoutMs,
    cache: { maxEntries: 16 },
    // Keyless roots named by a TUF mirror: fetched (and cached) like the agent does.
    trustedRoots: new TufTrustedRoots({ cacheDir: cfg?.sigstore.tufCacheDir ?? userTufCache() }),
  });
  let source: PolicySource<CompiledPolicy> | undefined;
  // Key Vault material is read as the agent reads it (keyManagement.azure of the configuration).
  const keys = createKeyProviders(cfg ?? defaultConfig());
  try {
    // 1. The policy.
    let policy: CompiledPolicy;
    let selection: Extract<Selection<CompiledPolicy>, { kind: "policy" }> | undefined;
    if (policyFile) {
      policy = await loadPolicyFile(policyFile, str(p, "policy-name"), keys);
    } else {
      const c = cfg!;
      const ns = namespace;
      if (ns !== undefined && c.policy.exemptNamespaces.includes(ns))
        return report(
          io,
          p,
          exemptVerdict(reference, givenDigest, `namespace "${ns}" is exempt by configuration`),
        );
      progress(`loading policies (${c.policy.source} source${c.policy.dir ? ` ${c.policy.dir}` : ""})`);
      try {
        source = await createPolicySource(c, silent, { keys });
        await startSynced(source, 30_000);
      } catch (e) {
        throw new UsageError(`cannot load policies: ${errorMessage(e)}`);
      }
      for (const r of source.status().rejected)
        io.err(
          `tollgate verify: warning: rejected ${r.policy ? `policy ${r.policy}` : r.origin}: ${r.reason}\n`,
        );
      let sel: Selection<CompiledPolicy>;
      if (ns !== undefined) sel = source.select(ns);
      else {
        const def = source.defaultPolicy();
        sel = def
          ? { kind: "policy", namespace: "", policy: def, via: "default" }
          : {
              kind: "error",
              namespace: "",
              message: `default policy "${c.policy.defaultPolicy}" is not loaded`,
              failurePolicy: "Closed",
            };
      }
      if (sel.kind === "exempt") return report(io, p, exemptVerdict(reference, givenDigest, sel.reason));
      if (sel.kind === "error")
        return report(
          io,
          p,
          noPolicyVerdict(reference, givenDigest ?? "", `no usable policy: ${sel.message}`),
        );
      for (const n of sel.notes ?? []) io.err(`tollgate verify: note: ${n}\n`);
      policy = sel.policy;
      selection = sel;
    }

    // 2. The digest.
    let digest = givenDigest;
    if (!digest) {
      progress(`resolving ${reference}`);
      try {
        const desc = await engine.registry.resolve(reference, { signal: AbortSignal.timeout(timeoutMs) });
        digest = desc.digest;
      } catch (e) {
        const err = toEngineError(e);
        return report(
          io,
          p,
          failedVerdict(policy, reference, "", err.code, `cannot resolve ${reference}: ${err.message}`),
        );
      }
    }

    // 3. Exemptions from the agent configuration (the engine applies the policy's own).
    if (cfg && !policyFile) {
      const by = new ExemptImages(cfg.policy.exemptImages).match(reference, digest);
      if (by !== undefined)
        return report(io, p, exemptVerdict(reference, digest, `image matches exempt pattern "${by}"`));
    }

    // 4. The verdict.
    progress(
      `verifying ${reference}@${digest} against ImagePolicy ${policy.name} (rev ${shortDigest(policy.revision)})`,
    );
    // The namespace that selected the policy is also what CEL's request.namespace reads.
    let verdict = await engine.verify({ reference, digest, ...(namespace ? { namespace } : {}) }, policy, {
      timeoutMs,
    });
    const bg = selection?.breakGlass;
    if (bg && !verdict.allowed && bg.until.getTime() > Date.now()) {
      verdict = {
        ...verdict,
        allowed: true,
        auditOnly: true,
        reasons: [
          ...verdict.reasons,
          `break-glass on namespace "${selection!.namespace}" until ${bg.until.toISOString()}${bg.reason ? ` (${bg.reason})` : ""}: allowed, but ImagePolicy ${policy.name} would deny it`,
        ],
      };
    }
    return report(io, p, verdict);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if (isPolicyValidationError(e)) throw new UsageError(e.message);
    if (isEngineError(e) && (e.code === "INVALID_CONFIG" || e.code === "INVALID_REFERENCE"))
      throw new UsageError(e.message);
    throw e;
  } finally {
    await source?.stop().catch(() => {});
    keys.stop();
    engine.registry.close();
  }
}

/** Loads and compiles one ImagePolicy from a file (with the file's Secrets/ConfigMaps). */
export async function loadPolicyFile(
  file: string,
  name: string | undefined,
  keys?: KeyProviders,
): Promise<CompiledPolicy> {
  const docs = readDocs(file);
  const bad = docs.find((d) => d.syntaxError);
  if (bad) throw new UsageError(`${docLabel(bad)}: ${bad.syntaxError}`);
  const policies = docs.filter((d) => d.kind === "ImagePolicy");
  let pick = policies;
  if (name !== undefined) pick = policies.filter((d) => d.name === name);
  if (pick.length === 0)
    throw new UsageError(
      name !== undefined
        ? `${file} holds no ImagePolicy named "${name}" (found: ${policies.map((d) => d.name ?? "?").join(", ") || "none"})`
        : `${file} holds no ImagePolicy document`,
    );
  if (pick.length > 1)
    throw new UsageError(
      `${file} holds ${pick.length} ImagePolicies (${pick.map((d) => d.name ?? "?").join(", ")}); choose one with --policy-name`,
    );
  const trust = fileTrustResolver(docs);
  if (trust.problems.length > 0) throw new UsageError(trust.problems.join("; "));
  const doc = pick[0]!;
  try {
    return await compilePolicy(doc.value, {
      resolver: { ...trust.resolver, ...(keys ? { resolveKey: keys.resolveKey } : {}) },
    });
  } catch (e) {
    if (isPolicyValidationError(e))
      throw new UsageError(
        `${docLabel(doc)} is invalid:\n${e.issues.map((i) => `  ${i.path}: ${i.message}`).join("\n")}`,
      );
    throw e;
  }
}

function baseVerdict(
  reference: string,
  digest: string,
  outcome: Outcome,
  allowed: boolean,
  reasons: string[],
): Verdict {
  return {
    allowed,
    outcome,
    mode: "Enforce",
    policy: { name: "", revision: "" },
    subject: { reference, digest },
    reasons,
    verifiers: [],
    cached: false,
    durationMs: 0,
    decidedAt: new Date().toISOString(),
  };
}

function exemptVerdict(reference: string, digest: string | undefined, reason: string): Verdict {
  return baseVerdict(reference, digest ?? "", "exempt", true, [reason]);
}

/** The agent fails closed when a namespace's policy cannot be honoured. */
function noPolicyVerdict(reference: string, digest: string, reason: string): Verdict {
  return {
    ...baseVerdict(reference, digest, "failed", false, [reason]),
    failure: { code: "INVALID_CONFIG", message: reason },
  };
}

/** What the engine reports when a verification cannot complete (failurePolicy decides). */
function failedVerdict(
  policy: CompiledPolicy,
  reference: string,
  digest: string,
  code: string,
  message: string,
): Verdict {
  const open = policy.failurePolicy === "Open";
  const reasons = [
    message,
    `failurePolicy ${policy.failurePolicy}: ${open ? "allowed" : "denied"} because verification could not complete`,
  ];
  let allowed = open;
  let auditOnly: boolean | undefined;
  if (!allowed && policy.mode === "Audit") {
    allowed = true;
    auditOnly = true;
    reasons.push(`mode Audit: allowed, but ImagePolicy ${policy.name} would deny it`);
  }
  return {
    ...baseVerdict(reference, digest, "failed", allowed, reasons),
    mode: policy.mode,
    policy: { name: policy.name, revision: policy.revision },
    failure: { code, message },
    ...(auditOnly ? { auditOnly } : {}),
  };
}

export function exitCodeFor(v: Verdict): number {
  if (v.outcome === "failed") return EXIT.INCOMPLETE;
  return v.allowed ? EXIT.OK : EXIT.FAIL;
}

function report(io: Io, p: Parsed, v: Verdict): number {
  io.out(str(p, "output") === "json" ? json(v) : renderVerdict(v));
  return exitCodeFor(v);
}

export function answerOf(v: Verdict): string {
  if (!v.allowed) return "DENIED";
  if (v.auditOnly) return "ALLOWED (would be denied; allowed by Audit mode or break-glass)";
  if (v.outcome === "failed") return "ALLOWED (failurePolicy Open)";
  return "ALLOWED";
}

export function renderVerdict(v: Verdict): string {
  const lines: string[] = [];
  const kv = (k: string, val: string) => lines.push(`${`${k}:`.padEnd(10)} ${val}`);
  kv("Answer", answerOf(v));
  kv("Outcome", v.outcome);
  kv("Policy", v.policy.name ? `${v.policy.name} (rev ${v.policy.revision}), mode ${v.mode}` : "-");
  kv("Image", v.subject.reference);
  kv("Digest", v.subject.digest || "-");
  if (v.failure) kv("Failure", `${v.failure.code}: ${v.failure.message}`);
  lines.push("Reasons:");
  for (const r of v.reasons) lines.push(`  - ${r}`);
  if (v.verifiers.length > 0) {
    lines.push("Signatures:");
    lines.push(
      table(
        ["VERIFIER", "KIND", "ARTIFACT", "RESULT", "SIGNER", "REASON"],
        v.verifiers.map((c) => [
          c.verifier,
          c.kind,
          shortDigest(c.artifactDigest),
          c.result,
          c.signer ?? "-",
          c.reason + (c.warnings?.length ? ` (warnings: ${c.warnings.join("; ")})` : ""),
        ]),
        "  ",
      ),
    );
  }
  if (v.attestations && v.attestations.length > 0) {
    lines.push("Attestations:");
    lines.push(
      table(
        ["NAME", "PREDICATE", "ARTIFACT", "RESULT", "SIGNER", "REASON"],
        v.attestations.map((a) => [
          a.name,
          a.predicateType,
          shortDigest(a.artifactDigest),
          a.result,
          a.signer ?? "-",
          a.reason,
        ]),
        "  ",
      ),
    );
  }
  if (v.expiresAt) kv("Expires", `${v.expiresAt} (time-dependent conditions)`);
  kv("Duration", `${Math.round(v.durationMs)} ms${v.cached ? " (cached)" : ""}`);
  return `${lines.join("\n")}\n`;
}
