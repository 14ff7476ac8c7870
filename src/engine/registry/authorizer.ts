// The registry auth state machine, per endpoint: no auth yet → the challenge of a 401
// (Basic, or Bearer with realm/service/scope) remembered → credentials (explicit, or the
// credential providers) → an Authorization header, proactively on later requests. Bearer
// tokens are cached per realm × service × scope and fetched once however many requests wait.
import { abortable } from "../abortable.js";
import { EngineError, isEngineError } from "../errors.js";
import { type Challenge, parseTokenResponse, parseWwwAuthenticate, TokenCache } from "./auth.js";
import type { CredentialResolver } from "./credentials/index.js";
import type { Credential } from "./dockerconfig.js";
import type { RegistryEndpoint } from "./hosts.js";
import type { HttpResponse, TlsOptions } from "./http.js";
import { statusError } from "./responses.js";
import type { RegistryStats, RepositoryRef } from "./types.js";

type AuthState = { kind: "basic" } | { kind: "bearer"; realm: string; service: string };

/** One HTTP exchange as the client performs it (counted, reported to onRequest). */
export interface ExchangeRequest {
  url: URL;
  headers: Record<string, string>;
  maxBytes: number;
  what: string;
  kind: string;
  tls: TlsOptions | undefined;
  signal: AbortSignal | undefined;
  method?: "GET" | "POST";
  body?: string;
}

export interface AuthorizerDeps {
  /** Explicit credentials by host; win over the resolver. */
  credentials: Record<string, Credential> | undefined;
  resolver: CredentialResolver;
  now: () => number;
  maxTokenBytes: number;
  userAgent: string;
  stats: RegistryStats;
  tlsFor(ep: RegistryEndpoint): TlsOptions | undefined;
  exchange(req: ExchangeRequest): Promise<HttpResponse>;
}

export class Authorizer {
  private readonly authStates = new Map<string, AuthState>();
  private readonly tokens: TokenCache;
  /** Token requests in flight, by cache key: concurrent requests share one. */
  private readonly tokenFlights = new Map<string, Promise<{ token: string; expiresAt: number }>>();

  constructor(private readonly deps: AuthorizerDeps) {
    this.tokens = new TokenCache(deps.now);
  }

  private async credentialFor(
    host: string,
    repo: RepositoryRef,
    signal: AbortSignal | undefined,
  ): Promise<Credential | undefined> {
    const explicit = this.deps.credentials?.[host] ?? this.deps.credentials?.[repo.registry];
    if (explicit) return explicit;
    // A mirror endpoint no provider names is served by the registry's own provider.
    const useHost = this.deps.resolver.ruleFor(host) ? host : repo.registry;
    try {
      return await this.deps.resolver.credentialFor({
        host: useHost,
        image: `${repo.registry}/${repo.repository}`,
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      if (isEngineError(e) && e.code === "REGISTRY_AUTH")
        throw new EngineError("REGISTRY_AUTH", `authentication to ${useHost} failed: ${e.message}`, {
          cause: e,
          ...(e.details ? { details: e.details } : {}),
        });
      throw e;
    }
  }

  /**
   * The Authorization header for a request: from the remembered challenge of this endpoint
   * (proactively, saving a 401 round trip), or from a fresh challenge after a 401.
   */
  async authorizationFor(
    ep: RegistryEndpoint,
    repo: RepositoryRef,
    scope: string,
    challengeHeader: string | undefined,
    signal: AbortSignal | undefined,
    /** The Authorization the refused request carried. */
    refused?: string,
  ): Promise<string | undefined> {
    const key = `${ep.scheme}://${ep.host}`;
    let state = this.authStates.get(key);
    let challengeScope: string | undefined;
    if (challengeHeader !== undefined) {
      if (challengeHeader === "") {
        throw new EngineError(
          "REGISTRY_AUTH",
          `registry ${ep.host} answered 401 without a WWW-Authenticate challenge`,
        );
      }
      const challenges: Challenge[] = parseWwwAuthenticate(challengeHeader);
      const bearer = challenges.find((c) => c.scheme === "bearer");
      const basic = challenges.find((c) => c.scheme === "basic");
      if (bearer) {
        const realm = bearer.params.realm;
        if (!realm)
          throw new EngineError(
            "REGISTRY_AUTH",
            `registry ${ep.host} sent a Bearer challenge without a realm`,
          );
        state = { kind: "bearer", realm, service: bearer.params.service ?? "" };
        challengeScope = bearer.params.scope;
        // A 401 for the token we hold means it is no longer good: forget it. A 401 for a
        // request sent before that token arrived says nothing about it (keeping it is what
        // makes concurrent requests share one token).
        const tkey = TokenCache.key(realm, state.service, challengeScope ?? scope);
        const held = this.tokens.get(tkey);
        if (held !== undefined && refused === `Bearer ${held}`) this.tokens.delete(tkey);
      } else if (basic) {
        state = { kind: "basic" };
      } else {
        throw new EngineError(
          "REGISTRY_AUTH",
          `registry ${ep.host} asked for unsupported authentication "${challenges[0]?.scheme ?? ""}"`,
        );
      }
      this.authStates.set(key, state);
    }
    if (!state) return undefined;
    if (state.kind === "basic") {
      const cred = await this.credentialFor(ep.host, repo, signal);
      if (!cred?.username) {
        if (challengeHeader !== undefined) {
          throw new EngineError(
            "REGISTRY_AUTH",
            `registry ${ep.host} requires credentials and none are configured (authentication failed)`,
          );
        }
        return undefined;
      }
      return `Basic ${Buffer.from(`${cred.username}:${cred.password ?? ""}`).toString("base64")}`;
    }
    const { realm, service } = state;
    const useScope = challengeScope ?? scope;
    const tkey = TokenCache.key(realm, service, useScope);
    const cached = this.tokens.get(tkey);
    if (cached) {
      this.deps.stats.cacheHits++;
      return `Bearer ${cached}`;
    }
    // One token request per key however many verifications need it at once (the credential
    // lookup is shared the same way); it runs without any one caller's signal, its own
    // timeouts bound it.
    let flight = this.tokenFlights.get(tkey);
    if (!flight) {
      flight = this.credentialFor(ep.host, repo, undefined)
        .then((cred) => this.fetchToken(ep, realm, service, useScope, cred, undefined))
        .then(
          (tok) => {
            this.tokenFlights.delete(tkey);
            this.tokens.set(tkey, tok.token, tok.expiresAt);
            return tok;
          },
          (e: unknown) => {
            this.tokenFlights.delete(tkey);
            throw e;
          },
        );
      this.tokenFlights.set(tkey, flight);
    } else this.deps.stats.cacheHits++;
    const tok = await abortable(flight, signal, "cancelled");
    return `Bearer ${tok.token}`;
  }

  private async fetchToken(
    ep: RegistryEndpoint,
    realm: string,
    service: string,
    scope: string,
    cred: Credential | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ token: string; expiresAt: number }> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch (e) {
      throw new EngineError("REGISTRY_AUTH", `registry ${ep.host} sent an invalid token realm`, { cause: e });
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new EngineError("REGISTRY_AUTH", `registry ${ep.host} sent a ${url.protocol} token realm`);
    }
    // Credentials over plain HTTP only to a loopback/plain-HTTP-configured registry's own host.
    const tls = url.host === ep.host ? this.deps.tlsFor(ep) : undefined;
    const headers: Record<string, string> = { "user-agent": this.deps.userAgent };
    this.deps.stats.tokenFetches++;
    const what = `token for ${scope}`;
    // An identity token is exchanged with an OAuth2 refresh_token POST; otherwise a GET,
    // with Basic credentials when there are any (distribution's token authentication).
    let form: string | undefined;
    if (cred?.identityToken) {
      form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: cred.identityToken,
        service,
        scope,
        client_id: "tollgate",
      }).toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    } else {
      if (service) url.searchParams.set("service", service);
      if (scope) url.searchParams.set("scope", scope);
      if (cred?.username) {
        headers.authorization = `Basic ${Buffer.from(`${cred.username}:${cred.password ?? ""}`).toString("base64")}`;
      }
    }
    const res = await this.deps.exchange({
      url,
      headers,
      maxBytes: this.deps.maxTokenBytes,
      what,
      kind: "token",
      tls,
      signal,
      ...(form !== undefined ? { method: "POST" as const, body: form } : {}),
    });
    if (res.status !== 200) {
      const err = statusError(res, what);
      throw new EngineError(
        err.code === "NOT_FOUND" ? "REGISTRY_AUTH" : err.code,
        `token endpoint: ${err.message}`,
      );
    }
    return parseTokenResponse(res.body, this.deps.now(), url.host);
  }
}
