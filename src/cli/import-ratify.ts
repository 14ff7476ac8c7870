// `tollgate policy import ratify FILE...`: Ratify's custom resources (config.ratify.deislabs.io
// v1alpha1/v1beta1: Verifier, Store, KeyManagementProvider, CertificateStore, Policy and their
// Namespaced* forms) → one ImagePolicy, plus a report of everything that was not mapped and
// why. Nothing is dropped silently: every document and every parameter is either mapped or
// listed. The mapping is documented in docs/cli.md (policy import ratify).
import { errorMessage } from "../base/errors.js";
import { stringify } from "yaml";
import { KEY_VAULT_NAME_RE, KEY_VAULT_VERSION_RE } from "../engine/index.js";
import { parseTrustPolicyDocument } from "../engine/notation/policy.js";
import { API_VERSION, KIND } from "../engine/policy/model.js";
import { parseCertificateBundle, parsePublicKeyPem } from "../engine/policy/pem.js";
import { isRecord } from "../base/record.js";
import { type CommandSpec, EXIT, type Parsed, str, UsageError } from "./args.js";
import { readDocs } from "./policy-file.js";

export const importRatifySpec: CommandSpec = {
  name: "tollgate policy import ratify",
  usage: "tollgate policy import ratify FILE... [--name NAME] [--sigstore-trusted-root FILE]",
  summary:
    "Converts Ratify custom resources (Verifier notation/cosign, KeyManagementProvider,\n" +
    "CertificateStore, Store, Policy) into one ImagePolicy (YAML on stdout) and reports on\n" +
    "stderr every resource or parameter that was not mapped, and why.",
  positionals: { min: 1, max: 1000, name: "FILE" },
  flags: [
    { name: "name", type: "string", value: "NAME", help: 'ImagePolicy name (default "ratify")' },
    {
      name: "sigstore-trusted-root",
      type: "string",
      value: "FILE",
      help: "Sigstore trusted_root.json for keyless cosign verifiers (default: the public-good root through TUF, as Ratify)",
    },
  ],
  details: `Exit codes:
  0  an ImagePolicy was written (the report lists what was not mapped)
  1  no verifier could be mapped (nothing written)
  2  usage error, or a file cannot be read`,
};

const GROUP = "config.ratify.deislabs.io/";
const NOTATION_TYPE = "application/vnd.cncf.notary.signature";
const COSIGN_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json";
const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export interface RatifyReportItem {
  /** "Kind/name" of the Ratify resource (or the file for unreadable documents). */
  source: string;
  /** The field concerned, when not the whole resource. */
  field?: string;
  status: "mapped" | "approximated" | "not mapped";
  detail: string;
}

export interface RatifyImport {
  policy?: Record<string, unknown>;
  report: RatifyReportItem[];
}

interface Res {
  kind: string;
  name: string;
  namespace?: string;
  spec: Record<string, unknown>;
}

/** Trust material a KeyManagementProvider or CertificateStore yields. */
interface Material {
  certificates: string[];
  keys: string[];
  /** An azurekeyvault provider: its Tollgate spec.keyManagementProviders entry (read by the agent). */
  vault?: VaultProvider;
}

interface VaultProvider {
  name: string;
  refreshInterval?: string;
  azureKeyVault: {
    vaultURI: string;
    tenantID?: string;
    clientID?: string;
    certificates: { name: string; version?: string }[];
    keys: { name: string; version?: string }[];
  };
}

function baseKind(kind: string): string {
  return kind.startsWith("Namespaced") ? kind.slice("Namespaced".length) : kind;
}

export function convertRatify(
  docs: { file: string; value: unknown }[],
  opts: { name?: string; trustedRoot?: unknown } = {},
): RatifyImport {
  const report: RatifyReportItem[] = [];
  const add = (source: string, status: RatifyReportItem["status"], detail: string, field?: string) =>
    report.push({ source, ...(field ? { field } : {}), status, detail });
  const resources: Res[] = [];
  for (const d of docs) {
    const v = d.value;
    if (!isRecord(v)) {
      add(d.file, "not mapped", "document is not an object");
      continue;
    }
    const meta = isRecord(v.metadata) ? v.metadata : {};
    const name = typeof meta.name === "string" ? meta.name : "(unnamed)";
    const kind = typeof v.kind === "string" ? v.kind : "(no kind)";
    if (typeof v.apiVersion !== "string" || !v.apiVersion.startsWith(GROUP)) {
      add(
        `${kind}/${name}`,
        "not mapped",
        `not a Ratify resource (apiVersion ${JSON.stringify(v.apiVersion)})`,
      );
      continue;
    }
    resources.push({
      kind: baseKind(kind),
      name,
      ...(typeof meta.namespace === "string" ? { namespace: meta.namespace } : {}),
      spec: isRecord(v.spec) ? v.spec : {},
    });
  }

  // Key management providers and certificate stores, addressable as "name" or "namespace/name".
  const material = new Map<string, Material>();
  for (const r of resources) {
    if (r.kind !== "KeyManagementProvider" && r.kind !== "CertificateStore") continue;
    const src = `${r.kind}/${r.name}`;
    const type = r.kind === "CertificateStore" ? r.spec.provider : r.spec.type;
    const params = isRecord(r.spec.parameters) ? r.spec.parameters : {};
    if (type === "azurekeyvault" && r.kind === "KeyManagementProvider") {
      const v = vaultProvider(src, r, params, add);
      if (v) {
        const m: Material = { certificates: [], keys: [], vault: v };
        material.set(r.name, m);
        if (r.namespace) material.set(`${r.namespace}/${r.name}`, m);
      }
      continue;
    }
    if (type !== "inline") {
      add(
        src,
        "not mapped",
        type === "azurekeyvault"
          ? "a CertificateStore of provider azurekeyvault is not imported: use a KeyManagementProvider (type azurekeyvault), which maps to spec.keyManagementProviders"
          : `provider type ${JSON.stringify(type)} is not supported`,
      );
      continue;
    }
    const value = typeof params.value === "string" ? params.value : "";
    const contentType = r.kind === "CertificateStore" ? "certificate" : (params.contentType ?? "certificate");
    const m: Material = { certificates: [], keys: [] };
    if (contentType === "certificate") {
      const c = parseCertificateBundle(value);
      if ("error" in c) {
        add(src, "not mapped", `inline certificates: ${c.error}`, "spec.parameters.value");
        continue;
      }
      m.certificates = c.certs;
    } else if (contentType === "key") {
      const k = parsePublicKeyPem(value);
      if ("error" in k) {
        add(src, "not mapped", `inline key: ${k.error}`, "spec.parameters.value");
        continue;
      }
      m.keys = [k.pem];
    } else {
      add(src, "not mapped", `contentType ${JSON.stringify(contentType)} is not supported`);
      continue;
    }
    material.set(r.name, m);
    if (r.namespace) material.set(`${r.namespace}/${r.name}`, m);
    add(
      src,
      "mapped",
      `inline ${contentType === "key" ? "public key" : `${m.certificates.length} certificate(s)`}`,
    );
  }
  const lookup = (ref: string) => material.get(ref) ?? material.get(ref.slice(ref.indexOf("/") + 1));
  // Vault providers the converted verifiers reference (the policy declares only these).
  const providers = new Map<string, VaultProvider>();
  const useProvider = (v: VaultProvider) => providers.set(v.name, v);

  const verifiers: Record<string, unknown>[] = [];
  const artifactTypes: string[] = [];
  const usedNames = new Set<string>();
  const verifierName = (r: Res, dflt: string) => {
    let n =
      r.name
        .toLowerCase()
        .replace(/[^a-z0-9.-]/g, "-")
        .replace(/^[-.]+|[-.]+$/g, "") || dflt;
    if (!NAME_RE.test(n) || n.length > 63) n = dflt;
    while (usedNames.has(n)) n = `${n}-x`;
    usedNames.add(n);
    return n;
  };

  for (const r of resources.filter((x) => x.kind === "Verifier")) {
    const src = `Verifier/${r.name}`;
    const type = typeof r.spec.type === "string" ? r.spec.type : r.spec.name;
    const params = isRecord(r.spec.parameters) ? r.spec.parameters : {};
    if (type === "notation") {
      const v = notationVerifier(src, params, lookup, add, useProvider);
      if (v) {
        verifiers.push({ name: verifierName(r, "notation"), notation: v });
        artifactTypes.push(typeof r.spec.artifactTypes === "string" ? r.spec.artifactTypes : NOTATION_TYPE);
      }
    } else if (type === "cosign") {
      const v = cosignVerifier(src, params, lookup, add, opts.trustedRoot, useProvider);
      if (v) {
        verifiers.push({ name: verifierName(r, "cosign"), cosign: v });
        artifactTypes.push(typeof r.spec.artifactTypes === "string" ? r.spec.artifactTypes : COSIGN_TYPE);
      }
    } else {
      add(
        src,
        "not mapped",
        `verifier type ${JSON.stringify(type)} is not supported (Tollgate verifies notation and cosign signatures only)`,
      );
    }
  }

  let match: "AnyOf" | "AllOf" = "AnyOf";
  for (const r of resources) {
    const src = `${r.kind}/${r.name}`;
    if (r.kind === "Store") {
      add(
        src,
        "not mapped",
        "registry access is not configured by policy: Tollgate reads registries as containerd does (hosts.toml) with the node's credentials; cosign signatures are always looked up",
      );
    } else if (r.kind === "Policy") {
      const params = isRecord(r.spec.parameters) ? r.spec.parameters : {};
      if (r.spec.type === "rego-policy" || (r.spec.type === undefined && params.policy !== undefined)) {
        add(
          src,
          "not mapped",
          "Rego policies are not converted: Ratify's input document differs from Tollgate's; compile a policy for Tollgate's input (opa build -t wasm) and set spec.rego",
        );
        continue;
      }
      const avp = isRecord(params.artifactVerificationPolicies) ? params.artifactVerificationPolicies : {};
      const rule = (t: string) => (avp[t] ?? avp.default ?? "all") as string;
      const rules = artifactTypes.map(rule);
      if (rules.every((x) => x === "any")) {
        match = "AnyOf";
        add(
          src,
          "mapped",
          'artifactVerificationPolicies "any" → match AnyOf (one accepted signature is enough)',
        );
      } else {
        match = "AnyOf";
        add(
          src,
          "approximated",
          'artifactVerificationPolicies "all" → match AnyOf: like Ratify, the signature types present decide and an image needs one verified signature; unlike Ratify, an additional signature of the same type that fails to verify does not deny the image',
        );
      }
    } else if (r.kind !== "Verifier" && r.kind !== "KeyManagementProvider" && r.kind !== "CertificateStore") {
      add(src, "not mapped", `Ratify kind ${r.kind} has no Tollgate equivalent`);
    }
  }

  if (verifiers.length === 0) return { report };
  const name = opts.name ?? "ratify";
  return {
    policy: {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name },
      spec: {
        ...(providers.size > 0 ? { keyManagementProviders: [...providers.values()] } : {}),
        verifiers,
        match,
      },
    },
    report,
  };
}

type Add = (source: string, status: RatifyReportItem["status"], detail: string, field?: string) => void;

function notationVerifier(
  src: string,
  params: Record<string, unknown>,
  lookup: (ref: string) => Material | undefined,
  add: Add,
  useProvider: (v: VaultProvider) => void,
): Record<string, unknown> | undefined {
  for (const k of Object.keys(params))
    if (k !== "verificationCertStores" && k !== "trustPolicyDoc")
      add(
        src,
        "not mapped",
        "parameter has no Tollgate equivalent (certificates must come from key management providers)",
        `spec.parameters.${k}`,
      );
  let policies: ReturnType<typeof parseTrustPolicyDocument>;
  try {
    policies = parseTrustPolicyDocument(params.trustPolicyDoc);
  } catch (e) {
    add(src, "not mapped", `trustPolicyDoc: ${errorMessage(e)}`, "spec.parameters.trustPolicyDoc");
    return undefined;
  }
  // v1beta1: {ca|signingAuthority|tsa: {store: [providers]}}; v1alpha1: {store: [providers]} (ca).
  const vcs = isRecord(params.verificationCertStores) ? params.verificationCertStores : {};
  const typed =
    Object.keys(vcs).length > 0 &&
    Object.keys(vcs).every((k) => ["ca", "signingAuthority", "tsa"].includes(k) && isRecord(vcs[k]));
  const groups: [string, Record<string, unknown>][] = typed
    ? Object.entries(vcs).map(([t, v]) => [t, v as Record<string, unknown>])
    : [["ca", vcs]];
  const trustStores: Record<string, unknown>[] = [];
  for (const [type, stores] of groups) {
    for (const [store, refs] of Object.entries(stores)) {
      const field = `spec.parameters.verificationCertStores${typed ? `.${type}` : ""}.${store}`;
      const pems: string[] = [];
      const list = Array.isArray(refs) ? refs : [];
      const vaults = list.map((ref) => (typeof ref === "string" ? lookup(ref)?.vault : undefined));
      if (list.length === 1 && vaults[0] && vaults[0].azureKeyVault.certificates.length > 0) {
        // One vault provider: the store reads every certificate it lists.
        useProvider(vaults[0]);
        trustStores.push({ type, name: store, keyManagementProvider: vaults[0].name });
        continue;
      }
      for (const [i, ref] of list.entries()) {
        if (vaults[i]) {
          add(
            src,
            "not mapped",
            `provider ${JSON.stringify(ref)} (Azure Key Vault) shares the store with other providers: a Tollgate trust store reads one provider; give it a store of its own`,
            field,
          );
          continue;
        }
        const m = typeof ref === "string" ? lookup(ref) : undefined;
        if (!m || m.certificates.length === 0) {
          add(
            src,
            "not mapped",
            `provider ${JSON.stringify(ref)} is not among the given files or holds no inline certificates`,
            field,
          );
          continue;
        }
        pems.push(...m.certificates);
      }
      if (pems.length === 0) continue;
      trustStores.push({ type, name: store, certificates: pems });
    }
  }
  const named = new Set(policies.flatMap((p) => p.trustStores));
  for (const n of named) {
    const [t, s] = [n.slice(0, n.indexOf(":")), n.slice(n.indexOf(":") + 1)];
    if (!trustStores.some((x) => x.type === t && x.name === s))
      add(
        src,
        "not mapped",
        `trust store ${n} named by trustPolicyDoc has no certificates here; like notation, a missing store fails to load and the level decides`,
        "spec.parameters.trustPolicyDoc",
      );
  }
  add(
    src,
    "mapped",
    `notation verifier with the trust policy document verbatim (${policies.length} trust policies, ${trustStores.length} trust stores)`,
  );
  return { trustPolicy: params.trustPolicyDoc, trustStores };
}

function cosignVerifier(
  src: string,
  params: Record<string, unknown>,
  lookup: (ref: string) => Material | undefined,
  add: Add,
  trustedRoot: unknown,
  useProvider: (v: VaultProvider) => void,
): Record<string, unknown> | undefined {
  if (!Array.isArray(params.trustPolicies)) {
    add(
      src,
      "not mapped",
      params.key !== undefined
        ? "legacy cosign configuration with a key file path on the Ratify pod: put the public key into a KeyManagementProvider (or the generated policy)"
        : "legacy keyless cosign configuration names no identity; Tollgate refuses keyless verification without issuer and subject rules",
    );
    return undefined;
  }
  for (const k of Object.keys(params))
    if (k !== "trustPolicies")
      add(src, "not mapped", "parameter has no Tollgate equivalent", `spec.parameters.${k}`);
  const tps = params.trustPolicies.filter(isRecord);
  if (tps.length !== 1) {
    add(
      src,
      "not mapped",
      `${tps.length} cosign trust policies: Tollgate's cosign verifier has no per-repository scopes; split them into one ImagePolicy each (spec.images = the scopes)`,
      "spec.parameters.trustPolicies",
    );
    return undefined;
  }
  const tp = tps[0]!;
  const at = "spec.parameters.trustPolicies[0]";
  const scopes = Array.isArray(tp.scopes) ? tp.scopes : [];
  if (!(scopes.length === 1 && scopes[0] === "*"))
    add(
      src,
      "approximated",
      `scopes ${JSON.stringify(scopes)} are not mapped to the verifier: restrict spec.images of the generated policy to them`,
      `${at}.scopes`,
    );
  if (tp.rekorURL !== undefined)
    add(
      src,
      "not mapped",
      "rekorURL: Tollgate verifies the transparency log offline (signed entry timestamp against the trusted root)",
      `${at}.rekorURL`,
    );
  const out: Record<string, unknown> = {};
  const keys: Record<string, unknown>[] = [];
  for (const [i, k] of (Array.isArray(tp.keys) ? tp.keys : []).entries()) {
    const ref = isRecord(k) && typeof k.provider === "string" ? k.provider : undefined;
    const m = ref === undefined ? undefined : lookup(ref);
    if (m?.vault) {
      const v = vaultKeys(m.vault, isRecord(k) ? k : {});
      if ("error" in v) add(src, "not mapped", v.error, `${at}.keys[${i}]`);
      else {
        useProvider(v);
        keys.push({ keyManagementProvider: v.name });
      }
      continue;
    }
    if (!m || m.keys.length === 0) {
      add(
        src,
        "not mapped",
        isRecord(k) && k.file !== undefined
          ? "key file paths on the Ratify pod are not imported"
          : `provider ${JSON.stringify(ref)} is not among the given files or holds no inline key`,
        `${at}.keys[${i}]`,
      );
      continue;
    }
    if (isRecord(k) && k.name !== undefined)
      add(
        src,
        "approximated",
        `key name ${JSON.stringify(k.name)}: every key of the provider is trusted`,
        `${at}.keys[${i}]`,
      );
    for (const pem of m.keys) keys.push({ name: `${ref!.replace(/[^a-z0-9-]/g, "-")}-${keys.length}`, pem });
  }
  if (keys.length > 0) out.keys = keys;
  const kl = isRecord(tp.keyless) ? tp.keyless : undefined;
  if (kl && Object.keys(kl).length > 0) {
    const id: Record<string, string> = {};
    if (typeof kl.certificateIdentity === "string") id.subject = kl.certificateIdentity;
    if (typeof kl.certificateIdentityRegExp === "string") id.subjectRegExp = kl.certificateIdentityRegExp;
    if (typeof kl.certificateOIDCIssuer === "string") id.issuer = kl.certificateOIDCIssuer;
    if (typeof kl.certificateOIDCIssuerRegExp === "string") id.issuerRegExp = kl.certificateOIDCIssuerRegExp;
    // Ratify fetches the public-good trusted root through TUF; so does `tuf: {}`.
    out.keyless = {
      trustedRoot: trustedRoot ?? { tuf: {} },
      identities: [id],
      requireTlog: tp.tLogVerify !== false,
      requireSct: kl.ctLogVerify !== false,
    };
  }
  if (out.keys === undefined && out.keyless === undefined) return undefined;
  add(
    src,
    "mapped",
    `cosign verifier (${keys.length} key(s)${out.keyless ? `, keyless with ${trustedRoot === undefined ? "the public-good Sigstore trusted root through TUF" : "the given trusted root"}` : ""}; transparency log ${tp.tLogVerify === false ? "not required" : "required"} for keyless)`,
  );
  return out;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dnsLabel = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
    .replace(/-+$/, "") || "vault";

/** An azurekeyvault KeyManagementProvider → a spec.keyManagementProviders entry. */
function vaultProvider(
  src: string,
  r: Res,
  params: Record<string, unknown>,
  add: Add,
): VaultProvider | undefined {
  const objects = (v: unknown, field: string) => {
    const out: { name: string; version?: string }[] = [];
    for (const [i, o] of (Array.isArray(v) ? v : []).entries()) {
      if (!isRecord(o) || typeof o.name !== "string" || !KEY_VAULT_NAME_RE.test(o.name)) {
        add(
          src,
          "not mapped",
          "not a Key Vault object name (1-127 letters, digits, dashes)",
          `spec.parameters.${field}[${i}]`,
        );
        continue;
      }
      if (
        o.version !== undefined &&
        o.version !== "" &&
        (typeof o.version !== "string" || !KEY_VAULT_VERSION_RE.test(o.version))
      ) {
        add(
          src,
          "not mapped",
          "not a Key Vault version (32 hex characters)",
          `spec.parameters.${field}[${i}].version`,
        );
        continue;
      }
      out.push({
        name: o.name,
        ...(typeof o.version === "string" && o.version !== "" ? { version: o.version } : {}),
      });
    }
    return out;
  };
  for (const k of Object.keys(params))
    if (!["vaultURI", "certificates", "keys", "tenantID", "clientID"].includes(k))
      add(src, "not mapped", "parameter has no Tollgate equivalent", `spec.parameters.${k}`);
  if (typeof params.vaultURI !== "string" || params.vaultURI === "") {
    add(src, "not mapped", "azurekeyvault provider without vaultURI", "spec.parameters.vaultURI");
    return undefined;
  }
  const certificates = objects(params.certificates, "certificates");
  const keys = objects(params.keys, "keys");
  const v: VaultProvider = {
    name: dnsLabel(r.name),
    ...(typeof r.spec.refreshInterval === "string" && r.spec.refreshInterval !== ""
      ? { refreshInterval: r.spec.refreshInterval }
      : {}),
    azureKeyVault: {
      vaultURI: params.vaultURI.replace(/\/+$/, ""),
      ...(typeof params.tenantID === "string" && params.tenantID !== "" ? { tenantID: params.tenantID } : {}),
      ...(typeof params.clientID === "string" && params.clientID !== "" ? { clientID: params.clientID } : {}),
      certificates,
      keys,
    },
  };
  add(
    src,
    "mapped",
    `Azure Key Vault → spec.keyManagementProviders ${v.name} (${certificates.length} certificate(s), ${keys.length} key(s)); the agent reads it with its Azure identity (keyManagement.azure)`,
  );
  return v;
}

/** A cosign trust policy key naming a vault provider: every key of it, or the one named. */
function vaultKeys(v: VaultProvider, k: Record<string, unknown>): VaultProvider | { error: string } {
  if (k.name === undefined) {
    if (v.azureKeyVault.keys.length === 0) return { error: `provider ${v.name} lists no keys` };
    return v;
  }
  if (typeof k.name !== "string") return { error: "key name is not a string" };
  const listed = v.azureKeyVault.keys.find((x) => x.name === k.name);
  const version = typeof k.version === "string" && k.version !== "" ? k.version : listed?.version;
  if (!listed) return { error: `key ${JSON.stringify(k.name)} is not among the keys of provider ${v.name}` };
  // One key: a provider of its own, so only that key is trusted (with the provider's identity).
  const name = dnsLabel(`${v.name}-${k.name}${version ? `-${version.slice(0, 8)}` : ""}`);
  if (!DNS_LABEL.test(name)) return { error: `cannot name a provider for key ${k.name}` };
  return {
    ...v,
    name,
    azureKeyVault: {
      ...v.azureKeyVault,
      certificates: [],
      keys: [{ name: k.name, ...(version ? { version } : {}) }],
    },
  };
}

export async function importRatify(
  p: Parsed,
  io: { out: (s: string) => void; err: (s: string) => void },
): Promise<number> {
  const docs = p.positionals.flatMap((f) =>
    readDocs(f).map((d) => ({ file: `${d.file}:${d.line}`, value: d.syntaxError ? undefined : d.value })),
  );
  const name = str(p, "name");
  if (name !== undefined && !NAME_RE.test(name))
    throw new UsageError(`--name ${JSON.stringify(name)} must be a lower-case DNS-style name`);
  let trustedRoot: unknown;
  const rootFile = str(p, "sigstore-trusted-root");
  if (rootFile !== undefined) {
    const d = readDocs(rootFile)[0];
    if (!d || d.syntaxError || !isRecord(d.value))
      throw new UsageError(`${rootFile} is not a JSON trusted root`);
    trustedRoot = d.value;
  }
  const r = convertRatify(docs, {
    ...(name !== undefined ? { name } : {}),
    ...(trustedRoot ? { trustedRoot } : {}),
  });
  for (const item of r.report)
    io.err(`${item.status.padEnd(12)} ${item.source}${item.field ? ` ${item.field}` : ""}: ${item.detail}\n`);
  if (!r.policy) {
    io.err(
      "tollgate policy import ratify: no notation or cosign verifier could be mapped; nothing written\n",
    );
    return EXIT.FAIL;
  }
  io.out(stringify(r.policy, { lineWidth: 0 }));
  return EXIT.OK;
}
