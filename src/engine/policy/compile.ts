// ParsedPolicy → CompiledPolicy: resolves Secret/ConfigMap references through the injected
// TrustMaterialResolver, re-validates resolved material with the same checks as inline
// material, loads the Rego module, and computes the revision. Any problem rejects the whole
// policy (the caller keeps the last good revision: invalid configuration never widens access).
import { errorMessage } from "../../base/errors.js";
import { createPublicKey, X509Certificate } from "node:crypto";
import { isEngineError } from "../errors.js";
import { parseAzureKmsUri } from "../keys/azurekms.js";
import { parseTrustPolicyDocument } from "../notation/policy.js";
import { compileAttestationPolicy } from "./attest.js";
import { type PolicyIssue, PolicyValidationError } from "./errors.js";
import {
  API_VERSION,
  type CompiledPolicy,
  type CompiledRego,
  type CompiledVerifier,
  type CosignConfig,
  DEFAULTS,
  type KeyManagementProviderSpec,
  type KeyVaultRef,
  type MaterialSource,
  type NotationConfig,
  type ParsedPolicy,
  type TrustMaterialRef,
  type TrustMaterialResolver,
  type TufTrustedRootSpec,
} from "./model.js";
import { checkTufRoot, embeddedRoot, tufSource, verifyTufRoot } from "../sigstore-trust/source.js";
import type { TufSource } from "../sigstore-trust/types.js";
import { compilePatterns } from "./patterns.js";
import { parseCertificateBundle, parsePublicKeyPem, pemBlocks } from "./pem.js";
import { loadRego } from "./rego.js";
import { canonicalJson, revisionOf, sha256Hex } from "./revision.js";
import { checkTrustedRoot, checkWasmBase64, parsePolicy } from "./validate.js";

export interface CompileOptions {
  /** Needed when the policy references Secrets or ConfigMaps. */
  resolver?: TrustMaterialResolver;
  signal?: AbortSignal;
}

const MAX_RESOLVED_BYTES = 16 << 20;

class Resolver {
  readonly issues: PolicyIssue[] = [];
  constructor(
    private readonly opts: CompileOptions,
    private readonly providers: KeyManagementProviderSpec[] = [],
  ) {}

  /** Key Vault objects a provider-backed source names (certificates for stores, keys for cosign). */
  private vaultRefs(src: MaterialSource, what: "certificates" | "keys"): KeyVaultRef[] {
    const kind = what === "certificates" ? "AzureKeyVaultCertificate" : "AzureKeyVaultKey";
    if (src.kms !== undefined) {
      const k = parseAzureKmsUri(src.kms);
      if ("error" in k) return [];
      return [{ kind, ...k, refreshSeconds: DEFAULTS.keyRefreshIntervalSeconds }];
    }
    const p = this.providers.find((x) => x.name === src.keyManagementProvider);
    if (!p) return [];
    const { vaultURI, tenantID, clientID } = p.azureKeyVault;
    return p.azureKeyVault[what].map((o) => ({
      kind,
      vaultURI,
      name: o.name,
      ...(o.version ? { version: o.version } : {}),
      ...(tenantID ? { tenantID } : {}),
      ...(clientID ? { clientID } : {}),
      refreshSeconds: p.refreshIntervalSeconds,
    }));
  }

  /** PEM text of every object a key management provider reference names, one after another. */
  private async fromProvider(
    src: MaterialSource,
    path: string,
    what: "certificates" | "keys",
  ): Promise<{ bytes: Uint8Array; where: string } | undefined> {
    const where = `${path}.${src.kms !== undefined ? "kms" : "keyManagementProvider"}`;
    const refs = this.vaultRefs(src, what);
    const resolveKey = this.opts.resolver?.resolveKey?.bind(this.opts.resolver);
    if (!resolveKey) {
      this.issues.push({
        path: where,
        message: "cannot be read: no key management providers are configured",
      });
      return undefined;
    }
    const texts: string[] = [];
    for (const ref of refs) {
      const label = `Key Vault ${ref.vaultURI} ${what === "keys" ? "key" : "certificate"} ${ref.name}${ref.version ? ` version ${ref.version}` : ""}`;
      try {
        const v = await resolveKey(ref, this.opts.signal);
        texts.push(typeof v === "string" ? v : Buffer.from(v).toString("utf8"));
      } catch (e) {
        this.issues.push({
          path: where,
          message: `${label} cannot be read: ${errorMessage(e)}`,
        });
        return undefined;
      }
    }
    return { bytes: Buffer.from(texts.join(""), "utf8"), where };
  }

  /** Returns the material's bytes, or undefined after recording an issue. */
  async bytes(
    src: MaterialSource,
    path: string,
    what: "certificates" | "keys" = "certificates",
  ): Promise<{ bytes: Uint8Array; where: string } | undefined> {
    if (src.inline !== undefined) return { bytes: Buffer.from(src.inline, "utf8"), where: `${path}` };
    if (src.keyManagementProvider !== undefined || src.kms !== undefined)
      return this.fromProvider(src, path, what);
    const kind = src.secretRef ? "Secret" : "ConfigMap";
    const ref = (src.secretRef ?? src.configMapRef)!;
    const where = `${path}.${src.secretRef ? "secretRef" : "configMapRef"}`;
    const full: TrustMaterialRef = { kind, ...ref };
    const label = `${kind} ${ref.namespace}/${ref.name} key "${ref.key}"`;
    if (!this.opts.resolver) {
      this.issues.push({
        path: where,
        message: `${label} cannot be read: no trust material resolver is configured`,
      });
      return undefined;
    }
    try {
      const v = await this.opts.resolver.resolve(full, this.opts.signal);
      const bytes = typeof v === "string" ? Buffer.from(v, "utf8") : v;
      if (bytes.byteLength > MAX_RESOLVED_BYTES) {
        this.issues.push({ path: where, message: `${label} is larger than ${MAX_RESOLVED_BYTES} bytes` });
        return undefined;
      }
      return { bytes, where };
    } catch (e) {
      this.issues.push({
        path: where,
        message: `${label} cannot be read: ${errorMessage(e)}`,
      });
      return undefined;
    }
  }

  async text(
    src: MaterialSource,
    path: string,
    inlineKey: string,
    what: "certificates" | "keys" = "certificates",
  ) {
    const r = await this.bytes(src, path, what);
    if (!r) return undefined;
    const where = src.inline !== undefined ? `${path}.${inlineKey}` : r.where;
    return { text: Buffer.from(r.bytes).toString("utf8"), where };
  }
}

/** The initial TUF root (given or shipped), checked: it must verify under its own root keys. */
async function compileTufSource(
  spec: TufTrustedRootSpec,
  path: string,
  res: Resolver,
): Promise<TufSource | undefined> {
  let text = embeddedRoot(spec.mirror);
  if (spec.root) {
    const got = await res.bytes(spec.root, `${path}.root`);
    if (!got) return undefined;
    const t = Buffer.from(got.bytes).toString("utf8");
    const why = checkTufRoot(t) ?? (await verifyTufRoot(t));
    if (why) {
      res.issues.push({ path: got.where, message: why });
      return undefined;
    }
    text = t;
  }
  if (text === undefined) {
    res.issues.push({ path: `${path}.root`, message: `no initial TUF root for mirror ${spec.mirror}` });
    return undefined;
  }
  return tufSource(spec.mirror, text, spec.refreshIntervalSeconds);
}

/** Validates, resolves and compiles a raw ImagePolicy document. Throws PolicyValidationError. */
export async function compilePolicy(doc: unknown, opts: CompileOptions = {}): Promise<CompiledPolicy> {
  return compileParsed(parsePolicy(doc), opts);
}

export async function compileParsed(
  parsed: ParsedPolicy,
  opts: CompileOptions = {},
): Promise<CompiledPolicy> {
  const { name, spec } = parsed;
  const res = new Resolver(opts, spec.keyManagementProviders);
  const verifiers: CompiledVerifier[] = [];
  const fingerprints: unknown[] = [];

  for (const [i, v] of spec.verifiers.entries()) {
    const path = `spec.verifiers[${i}]`;
    if (v.notation) {
      const n = v.notation;
      const stores: NotationConfig["trustStores"] = [];
      const storeFps: unknown[] = [];
      for (const [j, s] of n.trustStores.entries()) {
        const t = await res.text(s.certificates, `${path}.notation.trustStores[${j}]`, "certificates");
        if (!t) continue;
        const parsedCerts = parseCertificateBundle(t.text);
        if ("error" in parsedCerts) {
          res.issues.push({ path: t.where, message: parsedCerts.error });
          continue;
        }
        stores.push({ type: s.type, name: s.name, certificates: parsedCerts.certs });
        storeFps.push({
          type: s.type,
          name: s.name,
          certificates: parsedCerts.certs.map((c) => sha256Hex(new X509Certificate(c).raw)),
        });
      }
      let trustPolicies: NotationConfig["trustPolicies"] | undefined;
      let policyFp: unknown;
      if (n.trustPolicy) {
        const t = await res.text(n.trustPolicy, `${path}.notation`, "trustPolicy");
        if (t) {
          try {
            const doc = JSON.parse(t.text) as unknown;
            trustPolicies = parseTrustPolicyDocument(doc);
            policyFp = { trustPolicy: canonicalJson(trustPolicies) };
          } catch (e) {
            const msg = e instanceof SyntaxError ? `not valid JSON (${e.message})` : errorMessage(e);
            res.issues.push({ path: t.where, message: msg });
          }
        }
      } else {
        trustPolicies = [
          {
            name: v.name,
            // spec.images decides which images the policy governs; within it the verifier applies to all.
            registryScopes: ["*"],
            signatureVerification: { level: n.level, ...(n.override ? { override: n.override } : {}) },
            trustStores: n.trustStores.map((s) => `${s.type}:${s.name}`),
            trustedIdentities: n.trustedIdentities,
          },
        ];
        policyFp = { level: n.level, override: n.override, trustedIdentities: n.trustedIdentities };
      }
      if (trustPolicies) {
        const notation: NotationConfig = {
          trustPolicies,
          trustStores: stores,
          revocation: { enabled: true },
        };
        verifiers.push({ name: v.name, kind: "notation", notation });
        fingerprints.push({ name: v.name, notation: { ...(policyFp as object), trustStores: storeFps } });
      }
    } else {
      const c = v.cosign;
      const cfg: CosignConfig = {};
      const fp: Record<string, unknown> = {};
      if (c.keys) {
        cfg.keys = [];
        const keyFps: unknown[] = [];
        for (const [j, k] of c.keys.entries()) {
          const t = await res.text(k.pem, `${path}.cosign.keys[${j}]`, "pem", "keys");
          if (!t) continue;
          // A key management provider may hold several keys: each is trusted on its own.
          const texts =
            k.pem.keyManagementProvider !== undefined ? pemBlocks(t.text).map((b) => b.text) : [t.text];
          for (const text of texts) {
            const pk = parsePublicKeyPem(text);
            if ("error" in pk) {
              res.issues.push({ path: t.where, message: pk.error });
              continue;
            }
            cfg.keys.push({ ...(k.name !== undefined ? { name: k.name } : {}), pem: pk.pem });
            const der = createPublicKey(pk.pem).export({ type: "spki", format: "der" });
            keyFps.push({ name: k.name, spki: sha256Hex(der) });
          }
        }
        fp.keys = keyFps;
      }
      if (c.keyless?.tuf) {
        const kl = c.keyless;
        const tuf = await compileTufSource(kl.tuf!, `${path}.cosign.keyless.trustedRoot.tuf`, res);
        if (tuf) {
          const rest = { identities: kl.identities, requireTlog: kl.requireTlog, requireSct: kl.requireSct };
          cfg.keyless = { tuf, ...rest };
          const { mirror, rootDigest: root, refreshIntervalSeconds } = tuf;
          fp.keyless = { tuf: { mirror, root, refreshIntervalSeconds }, ...rest };
        }
      } else if (c.keyless?.trustedRoot) {
        const kl = c.keyless;
        const t = await res.text(kl.trustedRoot!, `${path}.cosign.keyless`, "trustedRoot");
        if (t) {
          const why = checkTrustedRoot(t.text);
          if (why) res.issues.push({ path: t.where, message: why });
          else {
            const trustedRoot = JSON.parse(t.text) as unknown;
            cfg.keyless = {
              trustedRoot,
              identities: kl.identities,
              requireTlog: kl.requireTlog,
              requireSct: kl.requireSct,
            };
            fp.keyless = {
              trustedRoot: sha256Hex(canonicalJson(trustedRoot)),
              identities: kl.identities,
              requireTlog: kl.requireTlog,
              requireSct: kl.requireSct,
            };
          }
        }
      }
      if (c.annotations) {
        cfg.annotations = c.annotations;
        fp.annotations = c.annotations;
      }
      verifiers.push({ name: v.name, kind: "cosign", cosign: cfg });
      fingerprints.push({ name: v.name, cosign: fp });
    }
  }

  let rego: CompiledRego | undefined;
  let regoFp: unknown;
  if (spec.rego) {
    const r = spec.rego;
    const got = await res.bytes(r.module, "spec.rego.module");
    if (got) {
      let wasm = got.bytes;
      const where = r.module.inline !== undefined ? "spec.rego.module" : got.where;
      // Referenced modules may hold raw .wasm (ConfigMap binaryData) or base64 text.
      const isRaw = wasm.byteLength >= 4 && Buffer.from(wasm).readUInt32BE(0) === 0x0061736d;
      let ok = true;
      if (!isRaw) {
        const text = Buffer.from(wasm).toString("utf8");
        const why = checkWasmBase64(text);
        if (why) {
          res.issues.push({ path: where, message: why });
          ok = false;
        } else wasm = Buffer.from(text.replace(/\s+/g, ""), "base64");
      }
      if (ok) {
        try {
          rego = await loadRego(wasm, r.entrypoint, r.data);
          regoFp = { module: sha256Hex(wasm), entrypoint: r.entrypoint, data: r.data };
        } catch (e) {
          const msg = isEngineError(e) ? e.message : String(e);
          res.issues.push({
            path: msg.startsWith("entrypoint") ? "spec.rego.entrypoint" : where,
            message: msg,
          });
        }
      }
    }
  }

  if (res.issues.length > 0) throw new PolicyValidationError(name, res.issues);

  const revision = revisionOf({
    apiVersion: API_VERSION,
    name,
    spec: {
      images: spec.images,
      unmatchedImages: spec.unmatchedImages,
      exemptImages: spec.exemptImages,
      match: spec.match,
      mode: spec.mode,
      failurePolicy: spec.failurePolicy,
      cache: spec.cache,
      verifiers: fingerprints,
      // Which providers are read from (the material itself is in the verifiers' fingerprints).
      keyManagementProviders: spec.keyManagementProviders,
      rego: regoFp,
      attestations: spec.attestations,
      conditions: spec.conditions,
    },
  });
  const attest = compileAttestationPolicy(spec);
  const governs = compilePatterns(spec.images);
  const isExempt = compilePatterns(spec.exemptImages);
  return Object.freeze({
    name,
    revision,
    spec,
    mode: spec.mode,
    failurePolicy: spec.failurePolicy,
    match: spec.match,
    unmatchedImages: spec.unmatchedImages,
    verifiers,
    ...(rego ? { rego } : {}),
    ...(attest ? { attest } : {}),
    cache: spec.cache,
    governs,
    isExempt,
  });
}
