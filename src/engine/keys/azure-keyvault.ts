// Azure Key Vault as a key management provider: certificates (their DER `cer`, as trust store
// certificates) and keys (their public JWK, as cosign public keys), by name with an optional
// pinned version, read with @azure/keyvault-certificates / @azure/keyvault-keys — so the
// vault's challenge-based authentication (401 + WWW-Authenticate → Entra token for the scope
// it names) and retries are the SDK's.
//
// One provider per vault and identity. Objects are fetched when a policy compile first asks,
// then refreshed every interval (the shortest any policy asked for). Rules:
//  - a refresh that fails keeps the last good material (never "no keys" because the vault
//    or Entra had a bad minute): status says stale, with the error and since when;
//  - a refresh that finds other material (a new version of an unpinned object, a pinned
//    version re-imported) reports the object as changed: the policies built from it recompile
//    and get a new revision, so verdicts cached under the old material are never reused;
//  - an object that never had a good copy makes the compile fail with the vault's reason.
// How long stale material may serve is bounded by `maxStaleSeconds`: past it the provider is
// not ready (the agent's /v1/status and readiness say so); the material stays in force — a
// vault outage is not a policy change — until the vault answers or the policy changes.
import { createHash, createPublicKey, X509Certificate } from "node:crypto";
import type { Agent } from "node:https";
import { CertificateClient } from "@azure/keyvault-certificates";
import { type JsonWebKey, KeyClient } from "@azure/keyvault-keys";
import type { TokenCredential } from "../azure/credential.js";
import { type KeyVaultRef, keyVaultRefKey, type TrustMaterialRef } from "../policy/model.js";
import type { KeyProvider, KeyProviderEvents, KeyProviderStatus } from "./types.js";

export interface AzureKeyVaultProviderOptions {
  vaultURI: string;
  credential: TokenCredential;
  /** Status/metrics name; defaults to "azurekeyvault:<host>". */
  name?: string;
  /** Serving stale material longer than this makes the provider not ready (default 24 h). */
  maxStaleSeconds?: number;
  /**
   * The SDK checks that the vault's challenge names a resource whose domain the vault URL is
   * in (e.g. vault.azure.net). Turn off only for private endpoints or custom domains.
   */
  disableChallengeResourceVerification?: boolean;
  /** HTTPS agent (custom CA bundle) for the vault requests. */
  agent?: Agent;
  /** Deadline for one vault read (default 10 s): a vault that accepts and never answers must not hold a policy. */
  readTimeoutMs?: number;
  events?: KeyProviderEvents;
  now?: () => number;
}

interface Entry {
  ref: KeyVaultRef;
  /** Last time a compile asked for it (objects no policy reads any more are dropped). */
  usedAt: number;
  /** The last good copy: PEM text and the version it came from. */
  good?: { pem: string; version: string; digest: string };
  error?: string;
  inflight?: Promise<void>;
}

const entryKey = (r: KeyVaultRef) => `${keyVaultRefKey(r)}#${r.version ?? ""}`;

export class AzureKeyVaultProvider implements KeyProvider {
  readonly type = "azurekeyvault" as const;
  readonly name: string;
  private readonly certs: CertificateClient;
  private readonly keys: KeyClient;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<(keys: Set<string>) => void>();
  private readonly now: () => number;
  private readonly maxStaleMs: number;
  private timer: NodeJS.Timeout | undefined;
  private intervalMs = 0;
  private lastRefresh: number | undefined;
  private lastError: { message: string; at: number } | undefined;
  /** When the provider started serving stale material (first failed refresh since a good one). */
  private staleSince: number | undefined;
  private stopped = false;

  constructor(private readonly o: AzureKeyVaultProviderOptions) {
    this.name = o.name ?? `azurekeyvault:${new URL(o.vaultURI).host}`;
    this.now = o.now ?? Date.now;
    this.maxStaleMs = (o.maxStaleSeconds ?? 86_400) * 1000;
    const clientOptions = {
      // A refresh runs again at the next interval: keep one attempt short instead of the SDK's minutes.
      retryOptions: { maxRetries: 1, retryDelayInMs: 200, maxRetryDelayInMs: 1000 },
      ...(o.disableChallengeResourceVerification ? { disableChallengeResourceVerification: true } : {}),
      ...(o.agent ? { agent: o.agent } : {}),
    };
    this.certs = new CertificateClient(o.vaultURI, o.credential, clientOptions);
    this.keys = new KeyClient(o.vaultURI, o.credential, clientOptions);
  }

  async resolve(ref: TrustMaterialRef | KeyVaultRef): Promise<string> {
    if (ref.kind !== "AzureKeyVaultCertificate" && ref.kind !== "AzureKeyVaultKey")
      throw new Error(`${this.name} cannot read ${ref.kind} references`);
    const k = entryKey(ref);
    let e = this.entries.get(k);
    if (!e) {
      e = { ref, usedAt: this.now() };
      this.entries.set(k, e);
    }
    e.usedAt = this.now();
    this.schedule(ref.refreshSeconds * 1000);
    if (!e.good) await this.fetch(e);
    if (!e.good) throw new Error(e.error ?? "not read yet");
    return e.good.pem;
  }

  /** Re-reads every object; reports changed objects to the listeners. */
  async refresh(): Promise<void> {
    const changed = new Set<string>();
    const before = new Map([...this.entries].map(([k, e]) => [k, e.good?.digest]));
    await Promise.all([...this.entries.values()].map((e) => this.fetch(e)));
    for (const [k, e] of this.entries)
      if (e.good && before.get(k) !== e.good.digest) changed.add(keyVaultRefKey(e.ref));
    if (changed.size > 0 && !this.stopped) for (const l of this.listeners) l(changed);
  }

  /**
   * Drops objects whose refKey is not in `keys` (what the policies in force read) and that no
   * compile asked for within `graceMs` (a compile in flight has not reported its reads yet).
   * Returns how many objects remain.
   */
  retain(keys: ReadonlySet<string>, graceMs = 60_000): number {
    const now = this.now();
    for (const [k, e] of this.entries)
      if (!keys.has(keyVaultRefKey(e.ref)) && now - e.usedAt > graceMs) this.entries.delete(k);
    return this.entries.size;
  }

  onChange(cb: (keys: Set<string>) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  status(): KeyProviderStatus {
    const now = this.now();
    const all = [...this.entries.values()];
    const failing = all.filter((e) => e.error !== undefined);
    const staleTooLong = this.staleSince !== undefined && now - this.staleSince > this.maxStaleMs;
    const revision = createHash("sha256");
    for (const e of all.sort((a, b) => (entryKey(a.ref) < entryKey(b.ref) ? -1 : 1)))
      revision.update(`${entryKey(e.ref)}=${e.good?.digest ?? "-"}\n`);
    return {
      provider: this.name,
      type: this.type,
      ready: all.every((e) => e.good !== undefined) && !staleTooLong,
      stale: failing.some((e) => e.good !== undefined),
      objects: all.map(
        (e) =>
          `${e.ref.kind === "AzureKeyVaultKey" ? "key" : "certificate"} ${e.ref.name}${e.ref.version ? "" : " (latest)"}@${e.good?.version ?? "-"}`,
      ),
      ...(this.lastRefresh !== undefined ? { lastRefresh: new Date(this.lastRefresh).toISOString() } : {}),
      ...(failing.length > 0 && this.lastError
        ? {
            error: `${this.lastError.message}${staleTooLong ? ` (stale for more than ${this.maxStaleMs / 1000} s)` : ""}`,
            errorAt: new Date(this.lastError.at).toISOString(),
          }
        : {}),
      revision: `sha256:${revision.digest("hex")}`,
      ...(this.intervalMs > 0 ? { refreshIntervalSeconds: this.intervalMs / 1000 } : {}),
    };
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.stopped || ms <= 0 || (this.intervalMs > 0 && this.intervalMs <= ms)) return;
    this.intervalMs = ms;
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => void this.refresh(), ms);
    this.timer.unref();
  }

  /** Single flight per object; records the outcome on the entry, never throws. */
  private fetch(e: Entry): Promise<void> {
    e.inflight ??= (async () => {
      try {
        const got =
          e.ref.kind === "AzureKeyVaultKey" ? await this.readKey(e.ref) : await this.readCertificate(e.ref);
        e.good = { ...got, digest: createHash("sha256").update(got.pem).digest("hex") };
        e.error = undefined;
        this.lastRefresh = this.now();
        if ([...this.entries.values()].every((x) => x.error === undefined)) this.staleSince = undefined;
        this.o.events?.refreshed?.(this.name, true);
      } catch (err) {
        e.error = describe(err, e.ref);
        this.lastError = { message: e.error, at: this.now() };
        if (e.good && this.staleSince === undefined) this.staleSince = this.now();
        this.o.events?.refreshed?.(this.name, false);
      } finally {
        e.inflight = undefined;
      }
    })();
    return e.inflight;
  }

  /** Runs one vault read under its deadline; a read cut off by it fails as VaultTimeout. */
  private async bounded<T>(read: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    const ms = this.o.readTimeoutMs ?? 10_000;
    const c = new AbortController();
    const t = setTimeout(() => c.abort(), ms);
    try {
      return await read(c.signal);
    } catch (err) {
      throw c.signal.aborted ? new VaultTimeout(ms) : err;
    } finally {
      clearTimeout(t);
    }
  }

  private async readCertificate(ref: KeyVaultRef): Promise<{ pem: string; version: string }> {
    const c = await this.bounded((abortSignal) =>
      ref.version
        ? this.certs.getCertificateVersion(ref.name, ref.version, { abortSignal })
        : this.certs.getCertificate(ref.name, { abortSignal }),
    );
    if (c.properties.enabled === false) throw new Error("the certificate version is disabled");
    if (!c.cer || c.cer.byteLength === 0) throw new Error("the vault returned no certificate bytes (cer)");
    let pem: string;
    try {
      pem = new X509Certificate(c.cer).toString();
    } catch (err) {
      throw new Error(`cer is not a DER X.509 certificate (${(err as Error).message})`);
    }
    return { pem, version: c.properties.version ?? "" };
  }

  private async readKey(ref: KeyVaultRef): Promise<{ pem: string; version: string }> {
    const k = await this.bounded((abortSignal) =>
      this.keys.getKey(ref.name, { ...(ref.version ? { version: ref.version } : {}), abortSignal }),
    );
    if (k.properties.enabled === false) throw new Error("the key version is disabled");
    if (!k.key) throw new Error("the vault returned no key material");
    return { pem: jwkToSpkiPem(k.key), version: k.properties.version ?? "" };
  }
}

const b64u = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString("base64url") : undefined);

/** Public half of a Key Vault JWK as PEM SPKI: EC P-256/P-384/P-521 and RSA (HSM variants too). */
export function jwkToSpkiPem(k: JsonWebKey): string {
  const kty = String(k.kty ?? "").replace(/-HSM$/, "");
  let jwk: Record<string, string>;
  if (kty === "EC") {
    if (!["P-256", "P-384", "P-521"].includes(String(k.crv)))
      throw new Error(`EC curve ${String(k.crv)} is not supported for cosign keys (P-256, P-384, P-521)`);
    if (!k.x || !k.y) throw new Error("EC key without x/y");
    jwk = { kty: "EC", crv: String(k.crv), x: b64u(k.x)!, y: b64u(k.y)! };
  } else if (kty === "RSA") {
    if (!k.n || !k.e) throw new Error("RSA key without n/e");
    jwk = { kty: "RSA", n: b64u(k.n)!, e: b64u(k.e)! };
  } else
    throw new Error(`key type ${JSON.stringify(k.kty)} is not a public key type cosign verifies (EC, RSA)`);
  return createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "pem" }).toString();
}

/** One line naming the object and what went wrong; never a token or a secret (none reach here). */
class VaultTimeout extends Error {
  constructor(readonly ms: number) {
    super(`the vault did not answer within ${ms} ms`);
    this.name = "VaultTimeout";
  }
}

function describe(err: unknown, ref: KeyVaultRef): string {
  const what = `${ref.kind === "AzureKeyVaultKey" ? "key" : "certificate"} ${ref.name}${ref.version ? ` version ${ref.version}` : ""}`;
  if (err instanceof VaultTimeout) return `${what}: ${err.message}`;
  const e = err as { name?: string; message?: string; statusCode?: number; code?: string };
  const first = (e?.message ?? String(err)).split("\n")[0]!.slice(0, 300);
  // Our credential chain's error (engine/azure/credential.ts), @azure/identity's error classes,
  // or MSAL's server errors it passes through (AADSTS codes).
  if (
    /^(AzureCredentialError|AuthenticationError|CredentialUnavailableError|AggregateAuthenticationError|ServerError|ClientAuthError)$/.test(
      e?.name ?? "",
    ) ||
    /\bAADSTS\d+|^(invalid_client|unauthorized_client|invalid_grant|invalid_request)\b/.test(first)
  )
    return `${what}: Azure authentication failed: ${first}`;
  if (e?.statusCode === 401 || e?.statusCode === 403)
    return `${what}: access denied by the vault (HTTP ${e.statusCode}): ${first}`;
  if (e?.statusCode === 404) return `${what}: not found in the vault`;
  if (e?.statusCode !== undefined) return `${what}: the vault answered HTTP ${e.statusCode}: ${first}`;
  if (e?.code) return `${what}: the vault is unreachable (${e.code})`;
  return `${what}: ${first}`;
}
