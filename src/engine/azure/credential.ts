// Builds a Microsoft Entra TokenCredential from an AzureCredentialSpec: the configured sources
// in order, each an @azure/identity credential pointed where the operator said (authority
// host, CA files, identity ids), the first that is configured and answers winning. Shared
// by everything that talks to Azure (the ACR credential provider, Key Vault).
//
// Unlike @azure/identity's ChainedTokenCredential, a failure names every source tried and
// why, in words safe to log: messages are cut to one line and scrubbed of secret values
// and anything shaped like a token.
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { errorMessage, TollgateError } from "../../base/errors.js";
import {
  type AccessToken,
  AzureCliCredential,
  ClientCertificateCredential,
  ClientSecretCredential,
  type GetTokenOptions,
  ManagedIdentityCredential,
  type TokenCredential,
  type TokenCredentialOptions,
  WorkloadIdentityCredential,
} from "@azure/identity";
import { type AzureCredentialSpec, type AzureSource, sourceMissing } from "./spec.js";

export type { AccessToken, TokenCredential } from "@azure/identity";

/** A failure of every configured source; `message` is safe to log and show. */
export class AzureCredentialError extends TollgateError<"AZURE_CREDENTIAL"> {
  constructor(
    message: string,
    /** source → why it gave no token. */
    readonly tried: Array<{ source: AzureSource; unavailable: boolean; reason: string }>,
  ) {
    super("AZURE_CREDENTIAL", message);
  }
}

/** Where the sources read what the spec leaves out (tests pass their own). */
export type Env = Record<string, string | undefined>;

const JWT_LIKE = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;

/** One line, bounded, without the given secret values or anything token-shaped. */
export function scrubMessage(text: string, secrets: readonly string[]): string {
  let s = (text.split("\n").find((l) => l.trim() !== "") ?? "").trim();
  for (const secret of secrets) if (secret.length >= 4) s = s.split(secret).join("<redacted>");
  s = s.replace(JWT_LIKE, "<token>");
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}

interface Source {
  source: AzureSource;
  /** Undefined: not configured here (the reason says what is missing). */
  credential?: TokenCredential;
  missing?: string;
}

function clientOptions(spec: AzureCredentialSpec, env: Env): TokenCredentialOptions {
  const authorityHost = spec.authorityHost ?? env.AZURE_AUTHORITY_HOST;
  const ca = (spec.caFiles ?? []).map((f) => readFileSync(f, "utf8"));
  return {
    ...(authorityHost ? { authorityHost } : {}),
    // Instance discovery asks the public cloud which authorities exist: an operator who
    // names an authority host (sovereign cloud, private endpoint) means that host only.
    ...(authorityHost ? { disableInstanceDiscovery: true } : {}),
    // Node's `ca` replaces the default roots: keep them and add the operator's.
    ...(ca.length > 0 ? { tlsOptions: { ca: [...tls.rootCertificates, ...ca] } } : {}),
    retryOptions: { maxRetries: 1 },
  };
}

function buildSource(source: AzureSource, spec: AzureCredentialSpec, env: Env): Source {
  const opts = clientOptions(spec, env);
  const tenantId = spec.tenantId ?? env.AZURE_TENANT_ID;
  const clientId = spec.clientId ?? env.AZURE_CLIENT_ID;
  switch (source) {
    case "environment": {
      const secret = env.AZURE_CLIENT_SECRET;
      const certPath = env.AZURE_CLIENT_CERTIFICATE_PATH;
      const missing = sourceMissing(source, spec, env);
      if (missing || !tenantId || !clientId) return { source, missing: missing ?? "not configured" };
      if (secret) return { source, credential: new ClientSecretCredential(tenantId, clientId, secret, opts) };
      const certificatePassword = env.AZURE_CLIENT_CERTIFICATE_PASSWORD;
      return {
        source,
        credential: new ClientCertificateCredential(
          tenantId,
          clientId,
          { certificatePath: certPath!, ...(certificatePassword ? { certificatePassword } : {}) },
          {
            ...opts,
            sendCertificateChain: /^(true|1)$/i.test(env.AZURE_CLIENT_SEND_CERTIFICATE_CHAIN ?? ""),
          },
        ),
      };
    }
    case "workloadIdentity": {
      const tokenFilePath = spec.federatedTokenFile ?? env.AZURE_FEDERATED_TOKEN_FILE;
      const missing = sourceMissing(source, spec, env);
      if (missing || !tenantId || !clientId || !tokenFilePath)
        return { source, missing: missing ?? "not configured" };
      return {
        source,
        credential: new WorkloadIdentityCredential({ ...opts, tenantId, clientId, tokenFilePath }),
      };
    }
    case "managedIdentity": {
      // The node's identity: system-assigned, or a user-assigned one by client or resource id.
      const id = spec.managedIdentityResourceId
        ? { resourceId: spec.managedIdentityResourceId }
        : spec.clientId
          ? { clientId: spec.clientId }
          : {};
      return { source, credential: new ManagedIdentityCredential({ ...opts, ...id }) };
    }
    case "azureCli":
      return {
        source,
        credential: new AzureCliCredential({
          ...(tenantId ? { tenantId } : {}),
          processTimeoutInMs: spec.timeoutMs,
        }),
      };
  }
}

function secretsOf(env: Env): string[] {
  return [env.AZURE_CLIENT_SECRET, env.AZURE_CLIENT_CERTIFICATE_PASSWORD].filter(
    (s): s is string => typeof s === "string" && s !== "",
  );
}

/** Rejects after `ms` (the sources' own limits are long and not all configurable). */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      // A source that does not answer (an unreachable managed identity endpoint) is not set
      // up here, as @azure/identity's own chain treats it: the next source is tried.
      timer = setTimeout(() => {
        const e = new Error(`did not answer within ${ms} ms`);
        e.name = "CredentialUnavailableError";
        reject(e);
      }, ms);
    }),
  ]);
}

/**
 * The spec's sources as one TokenCredential. A source that is not set up here (missing
 * variables, no az, no managed identity endpoint) is skipped; one that is set up but refuses
 * (wrong secret, wrong tenant) ends the chain, as DefaultAzureCredential does, so a
 * misconfigured identity is reported rather than silently replaced by another.
 */
export function createAzureCredential(spec: AzureCredentialSpec, env: Env = process.env): TokenCredential {
  const sources = spec.sources.map((s) => buildSource(s, spec, env));
  const secrets = secretsOf(env);
  return {
    async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
      const tried: AzureCredentialError["tried"] = [];
      const fail = (lastRefused: boolean) => {
        const list = tried
          .map((t) => `${t.source}: ${t.unavailable ? "unavailable, " : ""}${t.reason}`)
          .join("; ");
        return new AzureCredentialError(
          lastRefused
            ? `Microsoft Entra refused the token request (${list})`
            : `no Azure credential source produced a token (tried ${list})`,
          tried,
        );
      };
      for (const s of sources) {
        if (!s.credential) {
          tried.push({ source: s.source, unavailable: true, reason: s.missing ?? "not configured" });
          continue;
        }
        try {
          const token = await withTimeout(
            s.credential.getToken(scopes, options),
            spec.timeoutMs,
            `${s.source}`,
          );
          if (token) return token;
          tried.push({ source: s.source, unavailable: true, reason: "returned no token" });
        } catch (e) {
          let reason = scrubMessage(errorMessage(e), secrets);
          // MSAL's words for "the authority did not answer its OpenID metadata": what
          // Entra does for a tenant it does not know.
          if (/endpoints_resolution_error/.test(reason))
            reason = `the authority has no OpenID metadata for tenant ${spec.tenantId ?? env.AZURE_TENANT_ID ?? "(none)"} (is the tenant id or authority host wrong?)`;
          const unavailable = e instanceof Error && e.name === "CredentialUnavailableError";
          tried.push({ source: s.source, unavailable, reason });
          if (!unavailable) throw fail(true);
        }
      }
      throw fail(false);
    },
  };
}
