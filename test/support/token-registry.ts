// A private registry as real ones are: Debian's docker-registry with `auth.token`, behind a
// token server (this file, node:http on loopback) that checks Basic credentials and issues
// RS256 JWTs with an x5c chain the registry trusts through its rootcertbundle. Several
// authenticated instances (each its own host:port) and one open "admin" instance share one
// storage directory: tests push and sign through the admin instance, everything under test
// (containerd, the agent) goes through the authenticated ones.
import { execFileSync } from "node:child_process";
import { createPrivateKey, createSign, randomBytes, X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { type Daemon, freePort, startDaemon, waitFor } from "./procs.js";
import { registryConfigYaml } from "./registry.js";
import { tools } from "./tools.js";

export interface TokenRegistry {
  /** Authenticated instances' host:port. */
  authHosts: string[];
  /** The open instance on the same storage (for pushing and signing). */
  adminHost: string;
  username: string;
  password: string;
  /** Every token request: scopes asked for, and whether the credentials were right. */
  tokenRequests: Array<{ scopes: string[]; authenticated: boolean; anonymous: boolean }>;
  /** Every token issued (for the secret scan). */
  issuedTokens: string[];
  /** The service the registry expects in its tokens' audience. */
  service: string;
  /** Issues a registry token for `scopes` (pull only), as the token server would (another token server fronting the registry uses it). */
  issueToken(subject: string, scopes: string[], ttlSeconds?: number): { token: string; expiresIn: number };
  stop(): Promise<void>;
}

export interface TokenRegistryOptions {
  /** The realm the registry advertises (default: this file's token server). */
  realm?: string;
  /** The service the registry advertises and checks (default tollgate-test-registry). */
  service?: string;
}

const SERVICE = "tollgate-test-registry";
const ISSUER = "tollgate-test-token-server";

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

export async function startTokenRegistry(
  dir: string,
  instances = 2,
  opts: TokenRegistryOptions = {},
): Promise<TokenRegistry> {
  const service = opts.service ?? SERVICE;
  mkdirSync(path.join(dir, "data"), { recursive: true });
  const keyFile = path.join(dir, "token.key");
  const certFile = path.join(dir, "token.crt");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "2",
      "-subj",
      "/CN=tollgate test token signer",
    ],
    { stdio: "pipe" },
  );
  const key = createPrivateKey(readFileSync(keyFile));
  const certDer = new X509Certificate(readFileSync(certFile)).raw;
  const username = "ci-puller";
  const password = `pw-${randomBytes(12).toString("hex")}`;
  const tokenRequests: TokenRegistry["tokenRequests"] = [];
  const issuedTokens: string[] = [];

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname !== "/token") {
      res.writeHead(404).end();
      return;
    }
    const h = req.headers.authorization ?? "";
    const anonymous = h === "";
    const authenticated = h === `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
    const scopes = url.searchParams.getAll("scope");
    tokenRequests.push({ scopes, authenticated, anonymous });
    if (!authenticated) {
      res.writeHead(401, { "content-type": "application/json", "www-authenticate": 'Basic realm="token"' });
      res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }));
      return;
    }
    const { token } = issueToken(username, scopes);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }),
    );
  });
  function issueToken(subject: string, scopes: string[], ttlSeconds = 300) {
    const access = scopes.flatMap((s) => {
      const m = /^repository:([^:]+):(.+)$/.exec(s);
      return m
        ? [{ type: "repository", name: m[1], actions: m[2]!.split(",").filter((a) => a === "pull") }]
        : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", x5c: [certDer.toString("base64")] };
    const claims = {
      iss: ISSUER,
      sub: subject,
      aud: service,
      exp: now + ttlSeconds,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString("hex"),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign("RSA-SHA256").update(input).sign(key);
    const token = `${input}.${b64url(sig)}`;
    issuedTokens.push(token);
    return { token, expiresIn: ttlSeconds };
  }
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const realm = opts.realm ?? `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;

  const daemons: Daemon[] = [];
  const start = async (name: string, auth: boolean): Promise<string> => {
    const port = await freePort();
    const config = path.join(dir, `${name}.yml`);
    const authLines = [
      "auth:",
      "  token:",
      `    realm: ${realm}`,
      `    service: ${service}`,
      `    issuer: ${ISSUER}`,
      `    rootcertbundle: ${certFile}`,
    ];
    writeFileSync(config, registryConfigYaml(path.join(dir, "data"), port, auth ? authLines : []));
    const d = startDaemon(name, tools.registry, ["serve", config], { logDir: dir });
    daemons.push(d);
    const want = auth ? 401 : 200;
    await waitFor(`${name} /v2/`, async () => (await fetch(`http://127.0.0.1:${port}/v2/`)).status === want);
    return `127.0.0.1:${port}`;
  };
  const adminHost = await start("registry-admin", false);
  const authHosts: string[] = [];
  for (let i = 0; i < instances; i++) authHosts.push(await start(`registry-auth-${i}`, true));
  return {
    authHosts,
    adminHost,
    username,
    password,
    tokenRequests,
    issuedTokens,
    service,
    issueToken,
    async stop() {
      for (const d of daemons) await d.stop();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
