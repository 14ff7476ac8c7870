// Azure Container Registry's token exchange, as `az acr login` and AKS's credential provider
// do it: the registry's challenge names its token realm and service; a Microsoft Entra
// access token is exchanged at the realm's /oauth2/exchange for an ACR refresh token; the
// registry client then trades that refresh token at /oauth2/token (grant_type=refresh_token)
// for repository-scoped access tokens, which is the distribution token flow it already speaks.
import { isRecord } from "../../../base/record.js";
import { EngineError } from "../../errors.js";
import { parseWwwAuthenticate } from "../auth.js";
import { type AgentPool, header, performRequest, type TlsOptions } from "../http.js";

export interface AcrEndpoint {
  /** The realm the registry named (https://<login server>/oauth2/token). */
  realm: URL;
  service: string;
}

export interface AcrHttp {
  pool: AgentPool;
  tls?: TlsOptions;
  timeoutMs: number;
  userAgent: string;
}

const MAX_BODY = 64 * 1024;

/** The claims of a JWT (not verified: only read for hints such as expiry and tenant). */
export function jwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const c = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as unknown;
    return isRecord(c) ? c : undefined;
  } catch {
    return undefined;
  }
}

/** The `exp` claim of a JWT, in ms since the epoch; undefined when it is not a JWT with one. */
export function jwtExpiry(token: string): number | undefined {
  const exp = jwtClaims(token)?.exp;
  return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined;
}

/** The error text an OAuth2 / ACR error body carries, short and without anything token-shaped. */
function errorText(body: Buffer): string {
  let text = body.toString("utf8").slice(0, 2000);
  try {
    const d = JSON.parse(text) as Record<string, unknown>;
    const errs = Array.isArray(d.errors) ? (d.errors as Array<Record<string, unknown>>) : [];
    text =
      typeof d.error_description === "string"
        ? d.error_description
        : typeof d.error === "string"
          ? d.error
          : typeof d.details === "string"
            ? d.details
            : errs.length > 0
              ? String(errs[0]?.message ?? errs[0]?.code ?? "")
              : "";
  } catch {
    // not JSON: its first line
  }
  const line = (text.split("\n")[0] ?? "").replace(
    /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g,
    "<token>",
  );
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** Asks the registry (https://host/v2/) where its token service is. */
export async function acrEndpoint(host: string, http: AcrHttp): Promise<AcrEndpoint> {
  const url = new URL(`https://${host}/v2/`);
  const res = await performRequest(
    {
      method: "GET",
      url,
      headers: { "user-agent": http.userAgent },
      maxBytes: MAX_BODY,
      what: "/v2/",
      ...(http.tls ? { tls: http.tls } : {}),
    },
    http.pool,
    { connectMs: http.timeoutMs, totalMs: http.timeoutMs },
  );
  const challenge = header(res.headers, "www-authenticate");
  const bearer = challenge ? parseWwwAuthenticate(challenge).find((c) => c.scheme === "bearer") : undefined;
  const realm = bearer?.params.realm;
  if (res.status !== 401 || !bearer || !realm)
    throw new EngineError(
      "REGISTRY_AUTH",
      `registry ${host} is not an Azure container registry: /v2/ answered ${res.status} without a Bearer challenge`,
    );
  let realmUrl: URL;
  try {
    realmUrl = new URL(realm);
  } catch {
    throw new EngineError("REGISTRY_AUTH", `registry ${host} named an invalid token realm`);
  }
  // The Entra token goes to the realm: only over TLS, and only to the registry's own host
  // (an ACR realm is https://<login server>/oauth2/token), never elsewhere.
  if (realmUrl.protocol !== "https:" || realmUrl.host !== host)
    throw new EngineError(
      "REGISTRY_AUTH",
      `registry ${host} named token realm ${realmUrl.origin}: the Entra token is only sent to the registry itself over https`,
    );
  return { realm: realmUrl, service: bearer.params.service ?? host };
}

/**
 * POST /oauth2/exchange: Microsoft Entra access token → ACR refresh token (with its expiry in
 * ms, from its `exp` claim when it has one).
 */
export async function exchangeForRefreshToken(
  ep: AcrEndpoint,
  tenant: string,
  accessToken: string,
  http: AcrHttp,
): Promise<{ refreshToken: string; expiresAt: number | undefined }> {
  const url = new URL("/oauth2/exchange", ep.realm);
  const body = new URLSearchParams({
    grant_type: "access_token",
    service: ep.service,
    tenant,
    access_token: accessToken,
  }).toString();
  const res = await performRequest(
    {
      method: "POST",
      url,
      headers: { "user-agent": http.userAgent, "content-type": "application/x-www-form-urlencoded" },
      body,
      maxBytes: MAX_BODY,
      what: "ACR token exchange",
      ...(http.tls ? { tls: http.tls } : {}),
    },
    http.pool,
    { connectMs: http.timeoutMs, totalMs: http.timeoutMs },
  );
  if (res.status !== 200) {
    const why = errorText(res.body);
    throw new EngineError(
      "REGISTRY_AUTH",
      `${url.host} refused the Microsoft Entra token at /oauth2/exchange (HTTP ${res.status}${why ? `: ${why}` : ""})`,
      { details: { status: res.status } },
    );
  }
  let refreshToken: unknown;
  try {
    refreshToken = (JSON.parse(res.body.toString("utf8")) as Record<string, unknown>).refresh_token;
  } catch {
    refreshToken = undefined;
  }
  if (typeof refreshToken !== "string" || refreshToken === "")
    throw new EngineError("REGISTRY_AUTH", `${url.host} /oauth2/exchange answered without a refresh_token`);
  return { refreshToken, expiresAt: jwtExpiry(refreshToken) };
}
