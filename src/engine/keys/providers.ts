// The key management providers of one agent: routes each Key Vault reference of a policy
// compile to the provider for its vault and identity (created on first use), fans their change
// notifications out to the policy source, and lists every provider's status — including the
// ones that need no refresh (inline material, Secret/ConfigMap references), so /v1/status,
// doctor and the metrics show all trust material the same way.
//
// The Azure SDKs are imported on the first Key Vault reference: an agent whose policies use
// none never loads them (they add several MB to the process).
import { readFileSync } from "node:fs";
import https from "node:https";
import tls from "node:tls";
import type { Env, TokenCredential } from "../azure/credential.js";
import type { AzureCredentialSpec } from "../azure/spec.js";
import type { KeyVaultRef } from "../policy/model.js";
import type { AzureKeyVaultProvider, AzureKeyVaultProviderOptions } from "./azure-keyvault.js";
import type { KeyProviderEvents, KeyProviderStatus } from "./types.js";

export interface KeyProvidersOptions {
  azure?: {
    /**
     * The agent's Azure identity (default: every source, as DefaultAzureCredential); a
     * provider's tenantID/clientID override those two fields. Its caFiles are trusted for the
     * vault too.
     */
    credential?: AzureCredentialSpec;
    /** Where the credential sources read AZURE_* variables (default process.env; tests pass their own). */
    env?: Env;
    maxStaleSeconds?: number;
    disableChallengeResourceVerification?: boolean;
  };
  events?: KeyProviderEvents;
  /** Builds credentials (default: createAzureCredential); tests may pass their own. */
  makeCredential?: (spec: AzureCredentialSpec) => TokenCredential;
}

/** Status of a provider that needs no refresh (inline, Secret/ConfigMap references). */
export interface StatusOnlyProvider {
  status(): KeyProviderStatus;
}

export class KeyProviders {
  private readonly azure = new Map<string, AzureKeyVaultProvider>();
  private readonly creating = new Map<string, Promise<AzureKeyVaultProvider>>();
  private readonly credentials = new Map<string, TokenCredential>();
  private readonly listeners = new Set<(keys: Set<string>) => void>();
  private readonly passive: StatusOnlyProvider[] = [];

  constructor(private readonly o: KeyProvidersOptions = {}) {
    this.passive.push({
      status: () => ({ provider: "inline", type: "inline", ready: true, stale: false, objects: [] }),
    });
  }

  /** Adds a provider whose material comes with the policy source (shown in status only). */
  register(p: StatusOnlyProvider): void {
    this.passive.push(p);
  }

  resolveKey = async (ref: KeyVaultRef): Promise<string> => (await this.providerFor(ref)).resolve(ref);

  onChange(cb: (keys: Set<string>) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  status(): KeyProviderStatus[] {
    return [...this.passive.map((p) => p.status()), ...[...this.azure.values()].map((p) => p.status())];
  }

  /**
   * Forgets vault objects the policies in force no longer read (after a grace period), and
   * providers left with none: they are neither refreshed nor shown any more.
   */
  retain(keys: ReadonlySet<string>, graceMs?: number): void {
    for (const [id, p] of this.azure)
      if (p.retain(keys, graceMs) === 0) {
        p.stop();
        this.azure.delete(id);
      }
  }

  /** Refreshes every Key Vault provider now (the CLI's doctor, tests). */
  async refresh(): Promise<void> {
    await Promise.all([...this.azure.values()].map((p) => p.refresh()));
  }

  stop(): void {
    for (const p of this.azure.values()) p.stop();
  }

  private providerFor(ref: KeyVaultRef): Promise<AzureKeyVaultProvider> {
    const id = [ref.vaultURI, ref.tenantID ?? "", ref.clientID ?? ""].join("|");
    const have = this.azure.get(id);
    if (have) return Promise.resolve(have);
    let p = this.creating.get(id);
    if (!p) {
      p = this.create(id, ref).finally(() => this.creating.delete(id));
      this.creating.set(id, p);
    }
    return p;
  }

  private async create(id: string, ref: KeyVaultRef): Promise<AzureKeyVaultProvider> {
    const [{ createAzureCredential }, { AzureKeyVaultProvider }, { parseAzureCredentialSpec }] =
      await Promise.all([
        import("../azure/credential.js"),
        import("./azure-keyvault.js"),
        import("../azure/spec.js"),
      ]);
    const a = this.o.azure ?? {};
    const base = a.credential ?? parseAzureCredentialSpec({}, "keyManagement.azure", []);
    const spec: AzureCredentialSpec = { ...base };
    if (ref.tenantID) spec.tenantId = ref.tenantID;
    if (ref.clientID) {
      // The provider names its identity by client id: that replaces a resource id too.
      spec.clientId = ref.clientID;
      delete spec.managedIdentityResourceId;
    }
    const credKey = `${spec.tenantId ?? ""}|${spec.clientId ?? ""}`;
    let credential = this.credentials.get(credKey);
    if (!credential) {
      credential = this.o.makeCredential
        ? this.o.makeCredential(spec)
        : createAzureCredential(spec, a.env ?? process.env);
      this.credentials.set(credKey, credential);
    }
    // The vault is reached with the same extra CAs as Entra (private endpoints, proxies).
    const ca = (base.caFiles ?? []).map((f) => readFileSync(f, "utf8"));
    const agent = ca.length > 0 ? new https.Agent({ ca: [...tls.rootCertificates, ...ca] }) : undefined;
    const host = new URL(ref.vaultURI).host;
    const opts: AzureKeyVaultProviderOptions = {
      vaultURI: ref.vaultURI,
      credential,
      name: `azurekeyvault:${host}${ref.clientID ? `/${ref.clientID}` : ""}`,
      ...(a.maxStaleSeconds !== undefined ? { maxStaleSeconds: a.maxStaleSeconds } : {}),
      ...(a.disableChallengeResourceVerification ? { disableChallengeResourceVerification: true } : {}),
      ...(agent ? { agent } : {}),
      ...(this.o.events ? { events: this.o.events } : {}),
    };
    const p = new AzureKeyVaultProvider(opts);
    p.onChange((keys) => {
      for (const l of this.listeners) l(keys);
    });
    this.azure.set(id, p);
    return p;
  }
}
