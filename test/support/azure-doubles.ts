// Local doubles of the Azure services Tollgate talks to (the azure registry credential
// provider, the Azure Key Vault key management provider), speaking their real protocols on
// loopback: a test CA; Microsoft Entra's token endpoint (OpenID metadata,
// client_credentials with a client secret or a certificate-signed client assertion, and
// workload identity's federated token as the assertion); the managed identity endpoints
// (IMDS and the App Service style IDENTITY_ENDPOINT/IDENTITY_HEADER, plain HTTP as the real
// ones are); a fake `az` that prints what `az account get-access-token -o json` prints; and
// an ACR front (/oauth2/exchange, /oauth2/token, /v2/ proxied to a real docker-registry with
// token auth); Azure Key Vault (certificates and keys by name/version; a request without a
// valid bearer token gets 401 and the challenge the SDK authenticates from). The libraries are
// pointed here the way their users redirect them: authority host,
// AZURE_POD_IDENTITY_AUTHORITY_HOST, IDENTITY_ENDPOINT, PATH, the registry host, the vault URI.
import { execFileSync } from "node:child_process";
import {
  constants,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  randomUUID,
  sign,
  verify,
  X509Certificate,
} from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import path from "node:path";
import type { AzureCredentialSpec } from "../../src/engine/azure/spec.js";
import { KeyProviders, type KeyProvidersOptions } from "../../src/engine/keys/providers.js";
import { startTokenRegistry, type TokenRegistry } from "./token-registry.js";

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

export const ACR_AUDIENCE = "https://containerregistry.azure.net";

// ---- test CA ------------------------------------------------------------------------------

export interface TestCa {
  caFile: string;
  /** Server certificate and key for 127.0.0.1 / localhost, signed by the CA. */
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: "pipe" });
}

export function makeTestCa(dir: string): TestCa {
  mkdirSync(dir, { recursive: true });
  const run = (args: string, subj?: string) =>
    openssl([...args.split(" "), ...(subj ? ["-subj", subj] : [])], dir);
  run(
    "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2",
    "/CN=tollgate azure doubles test CA",
  );
  writeFileSync(path.join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  run("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr", "/CN=127.0.0.1");
  run(
    "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext",
  );
  return {
    caFile: path.join(dir, "ca.crt"),
    cert: readFileSync(path.join(dir, "server.crt"), "utf8"),
    key: readFileSync(path.join(dir, "server.key"), "utf8"),
  };
}

/** A self-signed client certificate with its key in one PEM file (what AZURE_CLIENT_CERTIFICATE_PATH names). */
export function makeClientCertificate(dir: string, name: string): { pemFile: string; certPem: string } {
  mkdirSync(dir, { recursive: true });
  openssl(
    [
      ...`req -x509 -newkey rsa:2048 -nodes -keyout ${name}.key -out ${name}.crt -days 2`.split(" "),
      "-subj",
      `/CN=${name}`,
    ],
    dir,
  );
  const certPem = readFileSync(path.join(dir, `${name}.crt`), "utf8");
  const pemFile = path.join(dir, `${name}.pem`);
  writeFileSync(pemFile, readFileSync(path.join(dir, `${name}.key`), "utf8") + certPem);
  return { pemFile, certPem };
}

// ---- JWTs ---------------------------------------------------------------------------------

export function signJwt(claims: Record<string, unknown>, key: KeyObject, kid = "k1"): string {
  const input = `${b64url(JSON.stringify({ typ: "JWT", alg: "RS256", kid }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign("sha256", Buffer.from(input), key))}`;
}

/** The claims of a JWT signed by `key` (RS256 or PS256), or undefined. */
export function verifyJwt(token: string, key: KeyObject): Record<string, unknown> | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const header = JSON.parse(Buffer.from(parts[0]!, "base64url").toString("utf8")) as { alg?: string };
    const input = Buffer.from(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2]!, "base64url");
    const ok =
      header.alg === "RS256"
        ? verify("sha256", input, key, sig)
        : header.alg === "PS256"
          ? verify("sha256", input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig)
          : false;
    if (!ok) return undefined;
    return JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

async function listen(server: http.Server | https.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as AddressInfo).port;
}

function close(server: http.Server | https.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

// ---- Microsoft Entra ------------------------------------------------------------------------

export interface EntraApp {
  clientId: string;
  /** The object id the tokens name (the principal ACR authorizes). */
  objectId: string;
  secret?: string;
  /** PEM of a certificate whose key may sign client assertions. */
  certificatePem?: string;
  /** Federated credentials: tokens (exact values) a workload may present as its assertion. */
  federatedTokens?: string[];
}

export interface EntraRequest {
  kind: "token" | "metadata" | "imds" | "appService";
  tenant?: string;
  clientId?: string;
  grant?: string;
  scope?: string;
  ok: boolean;
}

export interface EntraDouble {
  /** https://127.0.0.1:port (the authority host). */
  authorityHost: string;
  /** http://127.0.0.1:port: IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST) and App Service (/msi/token). */
  managedIdentityHost: string;
  /** The App Service style endpoint and its header value (IDENTITY_ENDPOINT / IDENTITY_HEADER). */
  appService: { endpoint: string; header: string };
  tenantId: string;
  /** The token signer's public key (what ACR trusts). */
  publicKey: KeyObject;
  requests: EntraRequest[];
  /** Every access token issued (for the secret scan). */
  issued: string[];
  /** Lifetime of issued access tokens (seconds); tests may change it. */
  settings: { tokenLifetimeSeconds: number };
  /** An access token for `app`, as Entra would issue it (what a fake az prints). */
  mint(objectId: string, clientId: string, audience?: string): { token: string; expiresOn: number };
  stop(): Promise<void>;
}

export interface EntraOptions {
  tls: TestCa;
  tenantId: string;
  apps: EntraApp[];
  /** The node's managed identity (IMDS and App Service answer for it). */
  managedIdentity?: { clientId: string; objectId: string };
}

export async function startEntraDouble(o: EntraOptions): Promise<EntraDouble> {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const requests: EntraRequest[] = [];
  const issued: string[] = [];
  const appSvcHeader = `hdr-${randomBytes(8).toString("hex")}`;
  // Read by the handlers on every request; tests may change it.
  const state = { tokenLifetimeSeconds: 3600 };
  let authorityHost = "";

  const mint = (objectId: string, clientId: string, audience = ACR_AUDIENCE) => {
    const now = Math.floor(Date.now() / 1000);
    const exp = now + state.tokenLifetimeSeconds;
    const token = signJwt(
      {
        aud: audience,
        iss: `https://sts.windows.net/${o.tenantId}/`,
        iat: now,
        nbf: now - 5,
        exp,
        tid: o.tenantId,
        oid: objectId,
        appid: clientId,
        sub: objectId,
        uti: randomBytes(6).toString("hex"),
      },
      privateKey,
    );
    issued.push(token);
    return { token, expiresOn: exp };
  };
  const audienceOf = (scope: string) =>
    scope
      .split(" ")
      .find((s) => s.endsWith("/.default"))
      ?.replace(/\/\.default$/, "");

  const aadError = (res: http.ServerResponse, status: number, error: string, code: number, text: string) =>
    json(res, status, {
      error,
      error_description: `AADSTS${code}: ${text} Trace ID: ${randomUUID()} Correlation ID: ${randomUUID()} Timestamp: ${new Date().toISOString()}`,
      error_codes: [code],
      timestamp: new Date().toISOString(),
      trace_id: randomUUID(),
      correlation_id: randomUUID(),
    });

  const entra = https.createServer({ cert: o.tls.cert, key: o.tls.key }, async (req, res) => {
    const url = new URL(req.url ?? "/", authorityHost);
    const parts = url.pathname.split("/").filter((p) => p !== "");
    const tenant = parts[0];
    if (req.method === "GET" && url.pathname.endsWith("/v2.0/.well-known/openid-configuration")) {
      const ok = tenant === o.tenantId;
      requests.push({ kind: "metadata", ...(tenant ? { tenant } : {}), ok });
      if (!ok) return aadError(res, 400, "invalid_tenant", 90002, `Tenant '${tenant}' not found.`);
      const base = `${authorityHost}/${tenant}`;
      return json(res, 200, {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        token_endpoint_auth_methods_supported: [
          "client_secret_post",
          "private_key_jwt",
          "client_secret_basic",
        ],
        jwks_uri: `${base}/discovery/v2.0/keys`,
        response_modes_supported: ["query", "fragment", "form_post"],
        subject_types_supported: ["pairwise"],
        id_token_signing_alg_values_supported: ["RS256"],
        response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
        scopes_supported: ["openid", "profile", "email", "offline_access"],
        issuer: `${base}/v2.0`,
        request_uri_parameter_supported: false,
        userinfo_endpoint: `${base}/oidc/userinfo`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
        http_logout_supported: true,
        frontchannel_logout_supported: true,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        claims_supported: ["sub", "iss", "aud", "exp", "iat", "tid"],
        kerberos_endpoint: `${base}/kerberos`,
        tenant_region_scope: "EU",
        cloud_instance_name: "microsoftonline.com",
        cloud_graph_host_name: "graph.windows.net",
        msgraph_host: "graph.microsoft.com",
        rbac_url: "https://pas.windows.net",
      });
    }
    if (req.method === "POST" && url.pathname === `/${tenant}/oauth2/v2.0/token`) {
      const form = new URLSearchParams(await readBody(req));
      const clientId = form.get("client_id") ?? "";
      const grant = form.get("grant_type") ?? "";
      const scope = form.get("scope") ?? "";
      const record = (ok: boolean) =>
        requests.push({ kind: "token", ...(tenant ? { tenant } : {}), clientId, grant, scope, ok });
      if (tenant !== o.tenantId) {
        record(false);
        return aadError(res, 400, "invalid_request", 90002, `Tenant '${tenant}' not found.`);
      }
      const app = o.apps.find((a) => a.clientId === clientId);
      if (!app || grant !== "client_credentials") {
        record(false);
        return aadError(
          res,
          400,
          "unauthorized_client",
          700016,
          `Application with identifier '${clientId}' was not found in the directory.`,
        );
      }
      let authenticated = false;
      const secret = form.get("client_secret");
      const assertion = form.get("client_assertion");
      if (secret !== null) authenticated = app.secret !== undefined && secret === app.secret;
      else if (
        assertion !== null &&
        form.get("client_assertion_type") === "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
      ) {
        if (app.federatedTokens?.includes(assertion)) authenticated = true;
        else if (app.certificatePem) {
          const claims = verifyJwt(assertion, new X509Certificate(app.certificatePem).publicKey);
          authenticated =
            claims !== undefined &&
            claims.iss === clientId &&
            claims.sub === clientId &&
            typeof claims.exp === "number" &&
            claims.exp * 1000 > Date.now();
        }
      }
      if (!authenticated) {
        record(false);
        return aadError(
          res,
          401,
          "invalid_client",
          secret !== null ? 7000215 : 700027,
          secret !== null
            ? "Invalid client secret provided."
            : "Client assertion failed signature validation.",
        );
      }
      record(true);
      const { token } = mint(app.objectId, clientId, audienceOf(scope) ?? ACR_AUDIENCE);
      return json(res, 200, {
        token_type: "Bearer",
        expires_in: state.tokenLifetimeSeconds,
        ext_expires_in: state.tokenLifetimeSeconds,
        access_token: token,
      });
    }
    json(res, 404, { error: "not_found" });
  });

  // IMDS and App Service: plain HTTP, as on a real VM / App Service sandbox.
  const mi = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    // MSAL normalises the endpoint to end in "/"; the services accept both.
    url.pathname = url.pathname.replace(/\/+$/, "");
    const resource = url.searchParams.get("resource") ?? "";
    const clientId = url.searchParams.get("client_id") ?? undefined;
    const answer = (kind: "imds" | "appService") => {
      const m = o.managedIdentity;
      const ok = m !== undefined && (clientId === undefined || clientId === m.clientId);
      requests.push({ kind, ...(clientId ? { clientId } : {}), scope: resource, ok });
      if (!ok)
        return json(res, 400, {
          error: "invalid_request",
          error_description: "Identity not found",
        });
      const { token, expiresOn } = mint(m!.objectId, m!.clientId, resource.replace(/\/$/, ""));
      return json(res, 200, {
        access_token: token,
        client_id: m!.clientId,
        expires_in: String(state.tokenLifetimeSeconds),
        expires_on: String(expiresOn),
        ext_expires_in: String(state.tokenLifetimeSeconds),
        not_before: String(expiresOn - state.tokenLifetimeSeconds),
        resource,
        token_type: "Bearer",
      });
    };
    if (url.pathname === "/metadata/identity/oauth2/token") {
      if (req.headers.metadata !== "true")
        return json(res, 400, {
          error: "invalid_request",
          error_description: "Required metadata header not specified",
        });
      return answer("imds");
    }
    if (url.pathname === "/msi/token") {
      if (req.headers["x-identity-header"] !== appSvcHeader)
        return json(res, 401, { statusCode: 401, message: "Unauthorized" });
      return answer("appService");
    }
    json(res, 404, { error: "not_found" });
  });

  const entraPort = await listen(entra);
  authorityHost = `https://127.0.0.1:${entraPort}`;
  const miPort = await listen(mi);
  return {
    authorityHost,
    managedIdentityHost: `http://127.0.0.1:${miPort}`,
    appService: { endpoint: `http://127.0.0.1:${miPort}/msi/token`, header: appSvcHeader },
    tenantId: o.tenantId,
    publicKey,
    requests,
    issued,
    settings: state,
    mint,
    async stop() {
      await close(entra);
      await close(mi);
    },
  };
}

// ---- Azure CLI ----------------------------------------------------------------------------

/**
 * Writes `bin/az`: answers `az account get-access-token --output json --resource R [--tenant T]`
 * with a token minted by the Entra double (the CLI's cached login), logs its arguments, and
 * says "Please run 'az login'" when `loggedIn` is false.
 */
export function writeFakeAz(
  binDir: string,
  o: { token?: { token: string; expiresOn: number }; tenantId: string; logFile: string },
): string {
  mkdirSync(binDir, { recursive: true });
  const file = path.join(binDir, "az");
  const out = o.token
    ? JSON.stringify(
        {
          accessToken: o.token.token,
          expiresOn: new Date(o.token.expiresOn * 1000).toISOString().replace("T", " ").slice(0, 26),
          expires_on: o.token.expiresOn,
          subscription: "00000000-0000-0000-0000-00000000c0de",
          tenant: o.tenantId,
          tokenType: "Bearer",
        },
        null,
        2,
      )
    : "";
  const script = o.token
    ? `#!/bin/sh\necho "$*" >> '${o.logFile}'\ncat <<'EOF'\n${out}\nEOF\n`
    : `#!/bin/sh\necho "$*" >> '${o.logFile}'\necho "ERROR: Please run 'az login' to setup account." >&2\nexit 1\n`;
  writeFileSync(file, script);
  chmodSync(file, 0o755);
  return file;
}

// ---- ACR ------------------------------------------------------------------------------------

export interface AcrDouble {
  /** The login server (127.0.0.1:port, https with the test CA). */
  host: string;
  /** The registry behind it, with its open admin instance for pushing. */
  registry: TokenRegistry;
  exchanges: Array<{ tenant: string; ok: boolean; reason?: string }>;
  tokens: Array<{ grant: string; scope: string; ok: boolean }>;
  /** ACR refresh tokens issued (for the secret scan). */
  refreshTokens: string[];
  /** Lifetime of refresh tokens (seconds); tests may change it. */
  settings: { refreshTokenLifetimeSeconds: number };
  /** A refresh token for `objectId`, as /oauth2/exchange would issue it (what kubelet's ACR plugin hands containerd). */
  refreshTokenFor(objectId: string): string;
  stop(): Promise<void>;
}

export interface AcrOptions {
  tls: TestCa;
  dir: string;
  /** The tenant the registry belongs to and the Entra signer it trusts. */
  tenantId: string;
  entraKey: KeyObject;
  /** Principals (object ids) with AcrPull. */
  pullers: string[];
}

const ACR_USER = "00000000-0000-0000-0000-000000000000";

export async function startAcrDouble(o: AcrOptions): Promise<AcrDouble> {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const exchanges: AcrDouble["exchanges"] = [];
  const tokens: AcrDouble["tokens"] = [];
  const refreshTokens: string[] = [];
  const state = { refreshTokenLifetimeSeconds: 3 * 3600 };
  let host = "";
  let registry: TokenRegistry | undefined;
  let backend = "";

  const acrError = (res: http.ServerResponse, status: number, details: string) =>
    json(res, status, {
      errors: [{ code: "UNAUTHORIZED", message: "authentication required", detail: details }],
      details,
    });

  const server = https.createServer({ cert: o.tls.cert, key: o.tls.key }, async (req, res) => {
    const url = new URL(req.url ?? "/", `https://${host}`);
    if (url.pathname === "/oauth2/exchange" && req.method === "POST") {
      const form = new URLSearchParams(await readBody(req));
      const tenant = form.get("tenant") ?? "";
      const fail = (reason: string) => {
        exchanges.push({ tenant, ok: false, reason });
        acrError(res, 401, reason);
      };
      if (form.get("grant_type") !== "access_token") return fail("unsupported grant_type");
      if (form.get("service") !== host) return fail("service does not match the login server");
      const claims = verifyJwt(form.get("access_token") ?? "", o.entraKey);
      if (!claims) return fail("invalid Microsoft Entra access token");
      if (typeof claims.exp !== "number" || claims.exp * 1000 < Date.now())
        return fail("expired access token");
      if (claims.aud !== ACR_AUDIENCE) return fail("access token audience is not ACR");
      if (tenant !== o.tenantId || claims.tid !== o.tenantId)
        return fail("tenant does not own this registry");
      if (!o.pullers.includes(String(claims.oid)))
        return fail("principal has no role assignment on this registry");
      exchanges.push({ tenant, ok: true });
      return json(res, 200, { refresh_token: refreshTokenFor(String(claims.oid)) });
    }
    if (url.pathname === "/oauth2/token") {
      // The refresh token as a POSTed grant (what the distribution token flow does with an
      // identity token), as the password of the all-zero user in a password grant
      // (containerd's OAuth2 POST) or in Basic auth (docker login to ACR).
      let refresh = "";
      let scope = "";
      let grant = "";
      if (req.method === "POST") {
        const form = new URLSearchParams(await readBody(req));
        grant = form.get("grant_type") ?? "";
        if (grant === "refresh_token") refresh = form.get("refresh_token") ?? "";
        else if (grant === "password" && form.get("username") === ACR_USER)
          refresh = form.get("password") ?? "";
        scope = form.getAll("scope").join(" ");
      } else {
        grant = "basic";
        scope = url.searchParams.getAll("scope").join(" ");
        const h = req.headers.authorization ?? "";
        const m = /^Basic (.+)$/.exec(h);
        const [user, ...pw] = m ? Buffer.from(m[1]!, "base64").toString("utf8").split(":") : [];
        if (user === ACR_USER) refresh = pw.join(":");
      }
      const claims = verifyJwt(refresh, publicKey);
      const ok =
        claims !== undefined &&
        claims.aud === host &&
        typeof claims.exp === "number" &&
        claims.exp * 1000 > Date.now();
      tokens.push({ grant, scope, ok });
      if (!ok) return acrError(res, 401, "invalid or expired refresh token");
      const { token, expiresIn } = registry!.issueToken(String(claims.sub), scope.split(" ").filter(Boolean));
      return json(res, 200, { access_token: token, expires_in: expiresIn });
    }
    if (url.pathname.startsWith("/v2")) {
      const up = http.request(
        `http://${backend}${req.url}`,
        { method: req.method, headers: { ...req.headers, host: backend } },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on("error", () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      req.pipe(up);
      return;
    }
    json(res, 404, { errors: [{ code: "NOT_FOUND" }] });
  });
  function refreshTokenFor(objectId: string): string {
    const now = Math.floor(Date.now() / 1000);
    const refresh = signJwt(
      {
        jti: randomUUID(),
        sub: objectId,
        nbf: now - 5,
        exp: now + state.refreshTokenLifetimeSeconds,
        iat: now,
        iss: "Azure Container Registry",
        aud: host,
        version: "1.0",
        grant_type: "refresh_token",
        tenant: o.tenantId,
        permissions: { actions: ["read"] },
      },
      privateKey,
    );
    refreshTokens.push(refresh);
    return refresh;
  }
  const port = await listen(server);
  host = `127.0.0.1:${port}`;
  registry = await startTokenRegistry(o.dir, 1, { realm: `https://${host}/oauth2/token`, service: host });
  backend = registry.authHosts[0]!;
  return {
    host,
    registry,
    exchanges,
    tokens,
    refreshTokens,
    settings: state,
    refreshTokenFor,
    async stop() {
      await close(server);
      await registry?.stop();
    },
  };
}

// ---- a whole tenant ---------------------------------------------------------------------------

export interface AzureWorld {
  ca: TestCa;
  entra: EntraDouble;
  acr: AcrDouble;
  tenantId: string;
  /** Service principals and identities, by role. */
  sp: { clientId: string; secret: string };
  certSp: { clientId: string; pemFile: string };
  workload: { clientId: string; tokenFile: string; token: string };
  managedIdentity: { clientId: string; objectId: string };
  cliUser: { objectId: string };
  /** A service principal that authenticates but has no pull role on the registry. */
  outsider: { clientId: string; secret: string };
  /** containerd-style certs.d telling the registry client to trust the test CA for the ACR host. */
  hostsDir: string;
  /** Every secret value the doubles know or issued (for the secret scan). */
  secrets(): string[];
  stop(): Promise<void>;
}

export async function startAzureWorld(dir: string): Promise<AzureWorld> {
  const ca = makeTestCa(path.join(dir, "ca"));
  const tenantId = randomUUID();
  const sp = { clientId: randomUUID(), secret: `sp~${randomBytes(18).toString("base64url")}` };
  const outsider = { clientId: randomUUID(), secret: `out~${randomBytes(18).toString("base64url")}` };
  const cert = makeClientCertificate(path.join(dir, "sp-cert"), "sp-cert");
  const certSp = { clientId: randomUUID(), pemFile: cert.pemFile };
  // What the kubelet projects for a workload identity pod: a service account token for the
  // audience api://AzureADTokenExchange (signed by the cluster; Entra trusts its issuer).
  const saKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  const now = Math.floor(Date.now() / 1000);
  const fedToken = signJwt(
    {
      aud: ["api://AzureADTokenExchange"],
      iss: "https://oidc.tollgate.test/",
      sub: "system:serviceaccount:tollgate-system:tollgate",
      iat: now,
      exp: now + 3600,
    },
    saKey,
  );
  const workloadClientId = randomUUID();
  mkdirSync(path.join(dir, "sa"), { recursive: true });
  const tokenFile = path.join(dir, "sa", "azure-identity-token");
  writeFileSync(tokenFile, fedToken);
  const managedIdentity = { clientId: randomUUID(), objectId: randomUUID() };
  const cliUser = { objectId: randomUUID() };
  const oids = {
    sp: randomUUID(),
    cert: randomUUID(),
    workload: randomUUID(),
    outsider: randomUUID(),
  };
  const entra = await startEntraDouble({
    tls: ca,
    tenantId,
    apps: [
      { clientId: sp.clientId, objectId: oids.sp, secret: sp.secret },
      { clientId: certSp.clientId, objectId: oids.cert, certificatePem: cert.certPem },
      { clientId: workloadClientId, objectId: oids.workload, federatedTokens: [fedToken] },
      { clientId: outsider.clientId, objectId: oids.outsider, secret: outsider.secret },
    ],
    managedIdentity,
  });
  const acr = await startAcrDouble({
    tls: ca,
    dir: path.join(dir, "acr"),
    tenantId,
    entraKey: entra.publicKey,
    pullers: [oids.sp, oids.cert, oids.workload, managedIdentity.objectId, cliUser.objectId],
  });
  const hostsDir = path.join(dir, "certs.d");
  mkdirSync(path.join(hostsDir, acr.host), { recursive: true });
  writeFileSync(
    path.join(hostsDir, acr.host, "hosts.toml"),
    `server = "https://${acr.host}"\nca = "${ca.caFile}"\n`,
  );
  return {
    ca,
    entra,
    acr,
    tenantId,
    sp,
    certSp,
    workload: { clientId: workloadClientId, tokenFile, token: fedToken },
    managedIdentity,
    cliUser,
    outsider,
    hostsDir,
    secrets: () => [
      sp.secret,
      outsider.secret,
      fedToken,
      readFileSync(`${cert.pemFile}`, "utf8").split("-----END PRIVATE KEY-----")[0]!.split("\n")[2]!,
      ...entra.issued,
      ...acr.refreshTokens,
      ...acr.registry.issuedTokens,
    ],
    async stop() {
      await acr.stop();
      await entra.stop();
    },
  };
}

// ---- Key Vault ----------------------------------------------------------------------------

interface Served {
  url: string;
  server: https.Server;
  sockets: Set<Socket>;
}

/** An HTTPS server on loopback that knows its open sockets (to drop them, as an outage does). */
async function serveTracked(
  tls: TestCa,
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<Served> {
  const server = https.createServer({ cert: tls.cert, key: tls.key }, handler);
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  const port = await listen(server);
  return { url: `https://127.0.0.1:${port}`, server, sockets };
}

interface Version<T> {
  version: string;
  value: T;
  enabled: boolean;
  created: number;
}

export interface VaultDouble {
  url: string;
  /** Adds a new (latest) version of a certificate from its PEM; returns the version id. */
  putCertificate(name: string, pem: string): string;
  /** Adds a new (latest) version of a key from its public PEM; returns the version id. */
  putKey(name: string, publicPem: string): string;
  disable(kind: "certificates" | "keys", name: string, version: string): void;
  /** While down, every connection is reset (the vault unreachable). */
  setDown(down: boolean): void;
  /** While hung, requests are accepted and never answered. */
  setHung(hung: boolean): void;
  requests: { method: string; path: string; apiVersion: string | null; authorized: boolean }[];
  stop(): Promise<void>;
}

export async function startVaultDouble(
  tls: TestCa,
  entra: EntraDouble,
  o: { resource?: string } = {},
): Promise<VaultDouble> {
  const resource = o.resource ?? "https://vault.azure.net";
  const certs = new Map<string, Version<Buffer>[]>();
  const keys = new Map<string, Version<Record<string, unknown>>[]>();
  const requests: VaultDouble["requests"] = [];
  let down = false;
  let hung = false;
  let base = "";
  const s = await serveTracked(tls, (req, res) => {
    if (hung) return; // accepted, never answered
    const u = new URL(req.url ?? "/", base);
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    // Entra's tokens for the vault: signed by the Entra double, for the vault's resource, unexpired.
    const claims = auth ? verifyJwt(auth, entra.publicKey) : undefined;
    const authorized =
      claims !== undefined &&
      claims.aud === resource &&
      typeof claims.exp === "number" &&
      claims.exp * 1000 > Date.now();
    requests.push({
      method: req.method ?? "",
      path: u.pathname,
      apiVersion: u.searchParams.get("api-version"),
      authorized,
    });
    if (!authorized)
      return json(
        res,
        401,
        { error: { code: "Unauthorized", message: "AKV10000: Request is missing a Bearer or PoP token." } },
        {
          "www-authenticate": `Bearer authorization="${entra.authorityHost}/${entra.tenantId}", resource="${resource}"`,
        },
      );
    if (!u.searchParams.get("api-version"))
      return json(res, 400, {
        error: {
          code: "MissingApiVersionParameter",
          message: "The api-version query parameter (?api-version=) is required for all requests.",
        },
      });
    const m = /^\/(certificates|keys)\/([^/]+)\/?([^/]*)$/.exec(u.pathname);
    if (req.method !== "GET" || !m)
      return json(res, 404, { error: { code: "NotFound", message: "not served by this double" } });
    const [, kind, name, version] = m as unknown as [string, "certificates" | "keys", string, string];
    const list: Version<unknown>[] = (kind === "certificates" ? certs : keys).get(name) ?? [];
    const v = version ? list.find((x) => x.version === version) : list.at(-1);
    if (!v)
      return json(res, 404, {
        error: {
          code: kind === "keys" ? "KeyNotFound" : "CertificateNotFound",
          message: `A ${kind.slice(0, -1)} with (name/id) ${name}${version ? `/${version}` : ""} was not found in this key vault.`,
        },
      });
    const attributes = {
      enabled: v.enabled,
      created: v.created,
      updated: v.created,
      recoveryLevel: "Recoverable+Purgeable",
    };
    if (kind === "certificates") {
      const der = v.value as Buffer;
      return json(res, 200, {
        id: `${base}/certificates/${name}/${v.version}`,
        kid: `${base}/keys/${name}/${v.version}`,
        sid: `${base}/secrets/${name}/${v.version}`,
        x5t: Buffer.from(new X509Certificate(der).fingerprint.replace(/:/g, ""), "hex").toString("base64url"),
        cer: der.toString("base64"),
        attributes,
      });
    }
    return json(res, 200, {
      key: { kid: `${base}/keys/${name}/${v.version}`, ...(v.value as object), key_ops: ["verify"] },
      attributes,
    });
  });
  base = s.url;
  s.server.prependListener("connection", (sock: Socket) => {
    if (down) sock.destroy();
  });
  const newVersion = () => randomBytes(16).toString("hex");
  return {
    url: s.url,
    putCertificate(name, pem) {
      const version = newVersion();
      const list = certs.get(name) ?? [];
      list.push({
        version,
        value: Buffer.from(new X509Certificate(pem).raw),
        enabled: true,
        created: Math.floor(Date.now() / 1000),
      });
      certs.set(name, list);
      return version;
    },
    putKey(name, publicPem) {
      const version = newVersion();
      const jwk = createPublicKey(publicPem).export({ format: "jwk" }) as Record<string, unknown>;
      const list = keys.get(name) ?? [];
      list.push({ version, value: jwk, enabled: true, created: Math.floor(Date.now() / 1000) });
      keys.set(name, list);
      return version;
    },
    disable(kind, name, version) {
      const v = ((kind === "certificates" ? certs : keys).get(name) ?? []).find((x) => x.version === version);
      if (v) v.enabled = false;
    },
    setDown(d) {
      down = d;
      if (d) for (const k of s.sockets) k.destroy();
    },
    setHung(h) {
      hung = h;
      if (!h) for (const k of s.sockets) k.destroy();
    },
    requests,
    stop: () => close(s.server),
  };
}

// ---- together ------------------------------------------------------------------------------

// ---- Entra + Key Vault for the key management providers -------------------------------------

export interface AzureDoubles {
  ca: TestCa;
  entra: EntraDouble;
  vault: VaultDouble;
  /** The service principal the vault reads are made as (its secret goes in AZURE_CLIENT_SECRET). */
  sp: { clientId: string; secret: string };
  /** The credential spec pointing @azure/identity at the doubles (authority host, test CA). */
  credential: AzureCredentialSpec;
  /** The environment the `environment` source reads (the service principal's secret). */
  env: Record<string, string>;
  /** `keyManagement.azure` of an agent configuration reading the vault through the doubles. */
  keyManagementAzure: Record<string, unknown>;
  /** An HTTPS agent trusting the test CA (for a vault provider built directly). */
  agent: https.Agent;
  /** Every secret value the doubles know or issued (for the secret scan). */
  secrets(): string[];
  stop(): Promise<void>;
}

/** Test CA under `dir`, the Entra double with one service principal, and a vault trusting its tokens. */
export async function startAzureDoubles(dir: string): Promise<AzureDoubles> {
  const ca = makeTestCa(dir);
  const tenantId = randomUUID();
  const sp = { clientId: randomUUID(), secret: `kv~${randomBytes(18).toString("base64url")}` };
  const entra = await startEntraDouble({
    tls: ca,
    tenantId,
    apps: [{ clientId: sp.clientId, objectId: randomUUID(), secret: sp.secret }],
  });
  const vault = await startVaultDouble(ca, entra);
  return {
    ca,
    entra,
    vault,
    sp,
    credential: {
      sources: ["environment"],
      tenantId,
      clientId: sp.clientId,
      authorityHost: entra.authorityHost,
      caFiles: [ca.caFile],
      timeoutMs: 10_000,
    },
    env: { AZURE_CLIENT_SECRET: sp.secret },
    keyManagementAzure: {
      sources: ["environment"],
      tenantId,
      clientId: sp.clientId,
      authorityHost: entra.authorityHost,
      // the vault double is 127.0.0.1, in no domain of the challenge's resource
      disableChallengeResourceVerification: true,
      caFiles: [ca.caFile],
    },
    agent: new https.Agent({ ca: readFileSync(ca.caFile, "utf8"), keepAlive: false }),
    secrets: () => [sp.secret, ...entra.issued],
    stop: async () => {
      await vault.stop();
      await entra.stop();
    },
  };
}

/**
 * Key management providers reading the doubles. The vault listens on 127.0.0.1, which is in no
 * domain of the challenge's resource (vault.azure.net): resource verification is turned off as
 * for a vault reached by another name.
 */
export function doubleKeyProviders(
  d: AzureDoubles,
  o: Omit<KeyProvidersOptions, "azure"> = {},
): KeyProviders {
  return new KeyProviders({
    ...o,
    azure: { credential: d.credential, env: d.env, disableChallengeResourceVerification: true },
  });
}
