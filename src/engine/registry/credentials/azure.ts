// The azure credential provider: a Microsoft Entra token from the configured sources
// (environment service principal, workload identity, managed identity, Azure CLI), exchanged
// at the registry's /oauth2/exchange for an ACR refresh token, which the registry client
// then uses as an OAuth2 identity token (acr.ts). One exchange per registry host at a time;
// the answer lives until shortly before the refresh token expires. @azure/identity is loaded
// on first use only: most configurations never need it.
import { readFileSync } from "node:fs";
import { errorMessage } from "../../../base/errors.js";
import type { TokenCredential } from "../../azure/credential.js";
import { type AzureCredentialSpec, sourceMissing } from "../../azure/spec.js";
import { EngineError, isEngineError } from "../../errors.js";
import { AgentPool, type TlsOptions } from "../http.js";
import { acrEndpoint, exchangeForRefreshToken, jwtClaims, jwtExpiry } from "./acr.js";
import type { CredentialAnswer, CredentialProvider, CredentialRequest } from "./types.js";

/** The audience of ACR's data plane (every Azure cloud). */
export const ACR_SCOPE = "https://containerregistry.azure.net/.default";

export interface AzureProviderOptions {
  name: string;
  credential: AzureCredentialSpec;
  /** The Entra scope asked for (default ACR's). */
  scope?: string;
  timeoutMs: number;
  now?: () => number;
  /** Where sources read their variables (default process.env). */
  env?: Record<string, string | undefined>;
}

/** Reuse a token until this much before it expires (at most a quarter of its life). */
const REFRESH_MARGIN_MS = 5 * 60_000;

function reuseUntil(obtainedAt: number, expiresAt: number): number {
  return expiresAt - Math.min(REFRESH_MARGIN_MS, Math.max(0, expiresAt - obtainedAt) / 4);
}

export class AzureProvider implements CredentialProvider {
  readonly type = "azure";
  readonly name: string;
  private credential: TokenCredential | undefined;
  private readonly now: () => number;
  private readonly pool = new AgentPool();
  private readonly tls: TlsOptions | undefined;
  private entra: { token: string; reuseUntil: number } | undefined;
  private entraFlight: Promise<string> | undefined;
  private readonly flights = new Map<string, Promise<CredentialAnswer>>();

  constructor(private readonly o: AzureProviderOptions) {
    this.name = o.name;
    this.now = o.now ?? Date.now;
    const ca = (o.credential.caFiles ?? []).map((f) => {
      try {
        return readFileSync(f, "utf8");
      } catch (e) {
        throw new EngineError(
          "INVALID_CONFIG",
          `credential provider ${o.name}: cannot read ${f}: ${errorMessage(e)}`,
        );
      }
    });
    this.tls = ca.length > 0 ? { ca } : undefined;
  }

  private http() {
    return {
      pool: this.pool,
      ...(this.tls ? { tls: this.tls } : {}),
      timeoutMs: this.o.timeoutMs,
      userAgent: "tollgate/0.1",
    };
  }

  /** An Entra access token for the registry audience: cached until near expiry, one request at a time. */
  private entraToken(): Promise<string> {
    const held = this.entra;
    if (held && this.now() < held.reuseUntil) return Promise.resolve(held.token);
    if (this.entraFlight) return this.entraFlight;
    const flight = (async () => {
      if (!this.credential) {
        const { createAzureCredential } = await import("../../azure/credential.js");
        this.credential = createAzureCredential(this.o.credential, this.o.env ?? process.env);
      }
      const started = this.now();
      let tok: Awaited<ReturnType<TokenCredential["getToken"]>>;
      try {
        tok = await this.credential.getToken(this.o.scope ?? ACR_SCOPE);
      } catch (e) {
        // AzureCredentialError messages are written to be shown (no secrets, one line).
        throw new EngineError("REGISTRY_AUTH", `credential provider ${this.name}: ${errorMessage(e)}`, {
          details: { provider: this.name },
        });
      }
      if (!tok) throw new EngineError("REGISTRY_AUTH", `credential provider ${this.name}: no Entra token`);
      const expiresAt = tok.expiresOnTimestamp;
      this.entra = {
        token: tok.token,
        reuseUntil: tok.refreshAfterTimestamp ?? reuseUntil(started, expiresAt),
      };
      return tok.token;
    })().finally(() => {
      this.entraFlight = undefined;
    });
    this.entraFlight = flight;
    return flight;
  }

  get(req: CredentialRequest): Promise<CredentialAnswer> {
    // The refresh token is per registry: every image on a host shares one exchange.
    let flight = this.flights.get(req.host);
    if (!flight) {
      flight = this.exchange(req.host).finally(() => this.flights.delete(req.host));
      this.flights.set(req.host, flight);
    }
    return flight;
  }

  private async exchange(host: string): Promise<CredentialAnswer> {
    try {
      const ep = await acrEndpoint(host, this.http());
      const accessToken = await this.entraToken();
      const env = this.o.env ?? process.env;
      const tid = jwtClaims(accessToken)?.tid;
      const tenant =
        this.o.credential.tenantId ?? env.AZURE_TENANT_ID ?? (typeof tid === "string" ? tid : undefined);
      if (!tenant)
        throw new EngineError(
          "REGISTRY_AUTH",
          `credential provider ${this.name}: no tenant id for the ACR exchange (set tenantId or AZURE_TENANT_ID)`,
        );
      const started = this.now();
      const { refreshToken, expiresAt } = await exchangeForRefreshToken(ep, tenant, accessToken, this.http());
      // Without an exp claim, trust the refresh token as long as the Entra token it came from.
      const until = expiresAt ?? jwtExpiry(accessToken) ?? started + 10 * 60_000;
      const ttlMs = Math.max(0, reuseUntil(started, until) - started);
      return { credential: { identityToken: refreshToken }, ttlMs, scope: "registry" };
    } catch (e) {
      if (isEngineError(e)) {
        if (e.code === "REGISTRY_AUTH" || e.code === "CANCELLED") throw e;
        // Unreachable or hung token endpoints are still "could not authenticate".
        throw new EngineError("REGISTRY_AUTH", `credential provider ${this.name}: ${e.message}`, {
          cause: e,
        });
      }
      throw e;
    }
  }

  check(): string[] {
    const problems: string[] = [];
    const env = this.o.env ?? process.env;
    // Only sources that can be judged without asking: when every configured one lacks its
    // settings, no token can come.
    const missing = this.o.credential.sources.map(
      (s) => [s, sourceMissing(s, this.o.credential, env)] as const,
    );
    if (missing.every(([, why]) => why !== undefined))
      problems.push(
        `no Azure credential source is set up here (${missing.map(([s, why]) => `${s}: ${why}`).join("; ")})`,
      );
    const tokenFile = this.o.credential.federatedTokenFile ?? env.AZURE_FEDERATED_TOKEN_FILE;
    if (this.o.credential.sources.includes("workloadIdentity") && tokenFile) {
      try {
        readFileSync(tokenFile);
      } catch {
        problems.push(`federated token file ${tokenFile} is not readable`);
      }
    }
    return problems;
  }
}
