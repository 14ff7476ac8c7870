// The azure credential provider against local doubles that speak the real protocols over
// real HTTPS (test CA): Microsoft Entra's token endpoint, IMDS, a fake `az`, and an ACR front
// (/oauth2/exchange, /oauth2/token) before a real docker-registry with token auth that holds a
// cosign-signed and an unsigned image. Each source obtains a token and the engine reads the
// signatures of the private image through it; refusals are REGISTRY_AUTH for the failure
// policy to decide, naming the sources tried; tokens are fetched once per expiry under 50
// concurrent verifications; no secret reaches any error, status or verdict.
// (The App Service style managed identity endpoint has its own file: MSAL picks the managed
// identity source once per process.)
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AgentMetrics } from "../../../../src/agent/metrics.js";
import { compilePolicy, createEngine } from "../../../../src/engine/index.js";
import {
  buildCredentialResolver,
  type CredentialResolver,
  parseCredentialProviderSpecs,
} from "../../../../src/engine/registry/credentials/index.js";
import { type AzureWorld, startAzureWorld, writeFakeAz } from "../../../support/azure-doubles.js";
import { pushBusyboxImage } from "../../../support/images.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../../../support/signing.js";

let dir: string;
let w: AzureWorld;
let key: CosignKeys;
let signed: { ref: string; digest: string };
let unsigned: { ref: string; digest: string };
const savedEnv = { ...process.env };
const AZURE_VARS = [
  "AZURE_TENANT_ID",
  "AZURE_CLIENT_ID",
  "AZURE_CLIENT_SECRET",
  "AZURE_CLIENT_CERTIFICATE_PATH",
  "AZURE_FEDERATED_TOKEN_FILE",
  "AZURE_AUTHORITY_HOST",
  "AZURE_POD_IDENTITY_AUTHORITY_HOST",
  "IDENTITY_ENDPOINT",
  "IDENTITY_HEADER",
  "MSI_ENDPOINT",
  "MSI_SECRET",
];

function setEnv(vars: Record<string, string>): void {
  for (const k of AZURE_VARS) delete process.env[k];
  Object.assign(process.env, vars);
}

afterEach(() => {
  for (const k of AZURE_VARS) delete process.env[k];
  process.env.PATH = savedEnv.PATH;
});

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-azure-"));
  w = await startAzureWorld(dir);
  key = await cosignGenerateKeyPair(path.join(dir, "cosign"));
  const s = pushBusyboxImage(w.acr.registry.adminHost, "team/app", "signed", { marker: "azure-signed" });
  const u = pushBusyboxImage(w.acr.registry.adminHost, "team/app", "unsigned", { marker: "azure-unsigned" });
  await cosignSign({ ref: s.pinned, keyDir: key });
  signed = { ref: `${w.acr.host}/team/app:signed`, digest: s.digest };
  unsigned = { ref: `${w.acr.host}/team/app:unsigned`, digest: u.digest };
}, 120_000);

afterAll(async () => {
  await w?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function resolverFor(extra: Record<string, unknown>, now?: () => number): CredentialResolver {
  const { specs, problems } = parseCredentialProviderSpecs([
    {
      name: "acr",
      type: "azure",
      hosts: [w.acr.host],
      authorityHost: w.entra.authorityHost,
      caFiles: [w.ca.caFile],
      negativeCacheSeconds: 0,
      ...extra,
    },
  ]);
  expect(problems).toEqual([]);
  return buildCredentialResolver(specs, [], now);
}

async function policy(failurePolicy: "Closed" | "Open" = "Closed") {
  return compilePolicy({
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name: `azure-${failurePolicy.toLowerCase()}` },
    spec: {
      failurePolicy,
      verifiers: [{ name: "cosign", cosign: { keys: [{ name: "k", pem: key.publicKeyPem }] } }],
    },
  });
}

function engineWith(resolver: CredentialResolver, now?: () => number) {
  return createEngine({
    registry: { credentialResolver: resolver, hostsDir: w.hostsDir, ...(now ? { now } : {}) },
    ...(now ? { now: () => new Date(now()) } : {}),
  });
}

/** Counts of what the doubles saw since `mark()`. */
function counter() {
  const at = { entra: w.entra.requests.length, ex: w.acr.exchanges.length, tok: w.acr.tokens.length };
  return () => ({
    entra: w.entra.requests.slice(at.entra),
    exchanges: w.acr.exchanges.slice(at.ex),
    tokens: w.acr.tokens.slice(at.tok),
  });
}

async function expectSignedAndUnsigned(resolver: CredentialResolver) {
  const engine = engineWith(resolver);
  const p = await policy();
  const ok = await engine.verify({ reference: signed.ref, digest: signed.digest }, p);
  expect(ok, JSON.stringify(ok.reasons)).toMatchObject({ outcome: "verified", allowed: true });
  const no = await engine.verify({ reference: unsigned.ref, digest: unsigned.digest }, p);
  expect(no, JSON.stringify(no.reasons)).toMatchObject({ outcome: "rejected", allowed: false });
  expect(no.reasons.join(" ")).not.toMatch(/authenticat/i);
}

describe("each Azure source obtains a token and reads the signatures of a private ACR image", () => {
  it("environment: client secret service principal", async () => {
    setEnv({ AZURE_TENANT_ID: w.tenantId, AZURE_CLIENT_ID: w.sp.clientId, AZURE_CLIENT_SECRET: w.sp.secret });
    const seen = counter();
    await expectSignedAndUnsigned(resolverFor({ sources: ["environment"] }));
    const s = seen();
    expect(s.entra.filter((r) => r.kind === "token")).toEqual([
      expect.objectContaining({
        tenant: w.tenantId,
        clientId: w.sp.clientId,
        grant: "client_credentials",
        ok: true,
      }),
    ]);
    expect(s.entra.find((r) => r.kind === "token")?.scope).toContain(
      "https://containerregistry.azure.net/.default",
    );
    expect(s.exchanges).toEqual([{ tenant: w.tenantId, ok: true }]);
    // The refresh token was traded as an OAuth2 refresh_token grant for repository-scoped tokens.
    expect(s.tokens.length).toBeGreaterThan(0);
    for (const t of s.tokens) expect(t).toMatchObject({ grant: "refresh_token", ok: true });
    expect(s.tokens[0]?.scope).toBe("repository:team/app:pull");
  });

  it("environment: client certificate service principal (signed client assertion)", async () => {
    setEnv({
      AZURE_TENANT_ID: w.tenantId,
      AZURE_CLIENT_ID: w.certSp.clientId,
      AZURE_CLIENT_CERTIFICATE_PATH: w.certSp.pemFile,
    });
    const seen = counter();
    await expectSignedAndUnsigned(resolverFor({ sources: ["environment"] }));
    expect(seen().entra.filter((r) => r.kind === "token")).toEqual([
      expect.objectContaining({ clientId: w.certSp.clientId, ok: true }),
    ]);
  });

  it("workload identity: the federated token file from the configuration", async () => {
    setEnv({});
    const seen = counter();
    await expectSignedAndUnsigned(
      resolverFor({
        sources: ["workloadIdentity"],
        tenantId: w.tenantId,
        clientId: w.workload.clientId,
        federatedTokenFile: w.workload.tokenFile,
      }),
    );
    expect(seen().entra.filter((r) => r.kind === "token")).toEqual([
      expect.objectContaining({ clientId: w.workload.clientId, ok: true }),
    ]);
  });

  it("workload identity: AZURE_FEDERATED_TOKEN_FILE/AZURE_CLIENT_ID/AZURE_TENANT_ID as the webhook injects them", async () => {
    setEnv({
      AZURE_TENANT_ID: w.tenantId,
      AZURE_CLIENT_ID: w.workload.clientId,
      AZURE_FEDERATED_TOKEN_FILE: w.workload.tokenFile,
      AZURE_AUTHORITY_HOST: `${w.entra.authorityHost}/`,
    });
    const seen = counter();
    const { specs } = parseCredentialProviderSpecs([
      {
        name: "acr",
        type: "azure",
        hosts: [w.acr.host],
        sources: ["workloadIdentity"],
        caFiles: [w.ca.caFile],
      },
    ]);
    await expectSignedAndUnsigned(buildCredentialResolver(specs));
    expect(seen().entra.filter((r) => r.kind === "token" && r.ok)).toHaveLength(1);
  });

  it("managed identity: IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST), user-assigned by client id", async () => {
    setEnv({ AZURE_POD_IDENTITY_AUTHORITY_HOST: w.entra.managedIdentityHost });
    const seen = counter();
    await expectSignedAndUnsigned(
      resolverFor({
        sources: ["managedIdentity"],
        clientId: w.managedIdentity.clientId,
        tenantId: w.tenantId,
      }),
    );
    expect(seen().entra).toEqual([
      expect.objectContaining({ kind: "imds", clientId: w.managedIdentity.clientId, ok: true }),
    ]);
    expect(seen().entra[0]?.scope).toBe("https://containerregistry.azure.net");
  });

  it("Azure CLI: a fake az on PATH printing `az account get-access-token -o json`", async () => {
    setEnv({});
    const log = path.join(dir, "az.log");
    const bin = path.join(dir, "az-bin");
    writeFakeAz(bin, {
      token: w.entra.mint(w.cliUser.objectId, "04b07795-8ddb-461a-bbee-02f9e1bf7b46"),
      tenantId: w.tenantId,
      logFile: log,
    });
    process.env.PATH = `${bin}:${savedEnv.PATH}`;
    const seen = counter();
    // The sources before it are not set up here: skipped, and the CLI serves.
    await expectSignedAndUnsigned(resolverFor({ sources: ["environment", "workloadIdentity", "azureCli"] }));
    const args = readFileSync(log, "utf8").trim().split("\n");
    expect(args[0]).toBe(
      "account get-access-token --output json --resource https://containerregistry.azure.net",
    );
    // The tenant came from the token (tid), as az's own login decides it.
    expect(seen().exchanges).toEqual([{ tenant: w.tenantId, ok: true }]);
  });
});

describe("refusals are REGISTRY_AUTH, name the sources tried, and the failure policy decides", () => {
  async function expectAuthFailure(resolver: CredentialResolver, pattern: RegExp) {
    const engine = engineWith(resolver);
    for (const fp of ["Closed", "Open"] as const) {
      const v = await engine.verify({ reference: signed.ref, digest: signed.digest }, await policy(fp));
      expect(v, JSON.stringify(v.reasons)).toMatchObject({
        outcome: "failed",
        allowed: fp === "Open",
        failure: { code: "REGISTRY_AUTH" },
      });
      const text = v.reasons.join(" ");
      expect(text).toMatch(/authentication to \S+ failed/);
      expect(text).toMatch(pattern);
      expect(text).not.toMatch(/no cosign signature|unsigned/i);
    }
    return resolver;
  }

  it("a wrong client secret: Entra's AADSTS reason, and the chain stops there (no fallback to az)", async () => {
    setEnv({
      AZURE_TENANT_ID: w.tenantId,
      AZURE_CLIENT_ID: w.sp.clientId,
      AZURE_CLIENT_SECRET: "not-the-secret-1234",
    });
    const log = path.join(dir, "az-not-asked.log");
    const bin = path.join(dir, "az-bin-2");
    writeFakeAz(bin, { token: w.entra.mint(w.cliUser.objectId, "cli"), tenantId: w.tenantId, logFile: log });
    process.env.PATH = `${bin}:${savedEnv.PATH}`;
    const r = await expectAuthFailure(
      resolverFor({ sources: ["environment", "azureCli"] }),
      /Microsoft Entra refused the token request \(environment: .*AADSTS7000215: Invalid client secret/,
    );
    expect(existsSync(log)).toBe(false);
    expect(r.status()[0]).toMatchObject({ name: "acr", type: "azure", lastError: { code: "REGISTRY_AUTH" } });
    expect(JSON.stringify(r.status())).not.toContain("not-the-secret-1234");
  });

  it("a wrong tenant", async () => {
    setEnv({ AZURE_CLIENT_ID: w.sp.clientId, AZURE_CLIENT_SECRET: w.sp.secret });
    await expectAuthFailure(
      resolverFor({ sources: ["environment"], tenantId: "11111111-2222-3333-4444-555555555555" }),
      /environment: unavailable, the authority has no OpenID metadata for tenant 11111111-2222-3333-4444-555555555555/,
    );
  });

  it("a principal without a pull role: ACR refuses the exchange", async () => {
    setEnv({
      AZURE_TENANT_ID: w.tenantId,
      AZURE_CLIENT_ID: w.outsider.clientId,
      AZURE_CLIENT_SECRET: w.outsider.secret,
    });
    await expectAuthFailure(
      resolverFor({ sources: ["environment"] }),
      /refused the Microsoft Entra token at \/oauth2\/exchange \(HTTP 401: principal has no role assignment/,
    );
  });

  it("no source set up: every source tried is named with what it lacks", async () => {
    setEnv({});
    const bin = path.join(dir, "az-logged-out");
    writeFakeAz(bin, { tenantId: w.tenantId, logFile: path.join(dir, "az-logged-out.log") });
    process.env.PATH = `${bin}:${savedEnv.PATH}`;
    await expectAuthFailure(
      resolverFor({ sources: ["environment", "workloadIdentity", "azureCli"] }),
      /no Azure credential source produced a token \(tried environment: unavailable, needs .*; workloadIdentity: unavailable, needs .*; azureCli: unavailable, Please run 'az login'/,
    );
  });
});

describe("negative caching and time limits", () => {
  it("a refused identity is not asked again within negativeCacheSeconds", async () => {
    setEnv({
      AZURE_TENANT_ID: w.tenantId,
      AZURE_CLIENT_ID: w.sp.clientId,
      AZURE_CLIENT_SECRET: "wrong-again-5678",
    });
    const seen = counter();
    const r = resolverFor({ sources: ["environment"], negativeCacheSeconds: 60 });
    const req = { host: w.acr.host, image: `${w.acr.host}/team/app` };
    for (let i = 0; i < 3; i++)
      await expect(r.credentialFor(req)).rejects.toMatchObject({ code: "REGISTRY_AUTH" });
    expect(seen().entra.filter((x) => x.kind === "token")).toHaveLength(1);
    expect(r.status()[0]).toMatchObject({ calls: 1, failures: 1 });
  });

  it("a source that does not answer within timeoutMs is skipped for the next one, and named", async () => {
    setEnv({ AZURE_TENANT_ID: w.tenantId, AZURE_CLIENT_ID: w.sp.clientId, AZURE_CLIENT_SECRET: w.sp.secret });
    // An authority that accepts the connection and never answers.
    const hung = net.createServer(() => {});
    await new Promise<void>((r) => hung.listen(0, "127.0.0.1", r));
    const authorityHost = `https://127.0.0.1:${(hung.address() as net.AddressInfo).port}`;
    const bin = path.join(dir, "az-after-hung");
    writeFakeAz(bin, {
      token: w.entra.mint(w.cliUser.objectId, "cli"),
      tenantId: w.tenantId,
      logFile: path.join(dir, "az-after-hung.log"),
    });
    process.env.PATH = `${bin}:${savedEnv.PATH}`;
    const req = { host: w.acr.host, image: `${w.acr.host}/team/app` };
    try {
      const viaAz = resolverFor({ sources: ["environment", "azureCli"], authorityHost, timeoutMs: 1000 });
      await expect(viaAz.credentialFor(req)).resolves.toMatchObject({ identityToken: expect.any(String) });
      const alone = resolverFor({ sources: ["environment"], authorityHost, timeoutMs: 1000 });
      await expect(alone.credentialFor(req)).rejects.toThrow(
        /no Azure credential source produced a token \(tried environment: unavailable, did not answer within 1000 ms\)/,
      );
    } finally {
      hung.close();
    }
  });
});

describe("expiry and refresh under 50 concurrent verifications", () => {
  it("one Entra token and one exchange per refresh-token expiry, one registry token per token expiry", async () => {
    setEnv({ AZURE_TENANT_ID: w.tenantId, AZURE_CLIENT_ID: w.sp.clientId, AZURE_CLIENT_SECRET: w.sp.secret });
    let t = Date.now();
    const now = () => t;
    // Entra tokens shorter than MSAL's own 5-minute renewal offset: MSAL asks Entra whenever
    // the provider asks MSAL, so Entra's count is the provider's.
    const lifetime = w.entra.settings.tokenLifetimeSeconds;
    w.entra.settings.tokenLifetimeSeconds = 240;
    try {
      const engine = engineWith(resolverFor({ sources: ["environment"] }, now), now);
      const p = await policy();
      let seq = 0;
      const wave = () =>
        Promise.all(
          Array.from({ length: 50 }, () => {
            const digest = `sha256:${createHash("sha256").update(`azure-image-${++seq}`).digest("hex")}`;
            return engine.verify({ reference: `${w.acr.host}/team/app:v${seq}`, digest }, p);
          }),
        );
      const check = (vs: Awaited<ReturnType<typeof wave>>) => {
        for (const v of vs) expect(v, JSON.stringify(v.reasons)).toMatchObject({ outcome: "rejected" });
      };
      const seen = counter();
      const entraTokens = () => seen().entra.filter((r) => r.kind === "token").length;

      check(await wave());
      expect([entraTokens(), seen().exchanges.length, seen().tokens.length]).toEqual([1, 1, 1]);

      t += 301_000; // the registry token (300 s) expired; the refresh token (3 h) has not
      check(await wave());
      expect([entraTokens(), seen().exchanges.length, seen().tokens.length]).toEqual([1, 1, 2]);

      t += 3 * 3600_000; // the refresh token and the Entra token expired
      check(await wave());
      expect([entraTokens(), seen().exchanges.length, seen().tokens.length]).toEqual([2, 2, 3]);
    } finally {
      w.entra.settings.tokenLifetimeSeconds = lifetime;
    }
  }, 60_000);
});

describe("configuration", () => {
  it("names every problem of an azure provider", () => {
    const { problems } = parseCredentialProviderSpecs([
      {
        name: "acr",
        type: "azure",
        hosts: ["*.azurecr.io"],
        sources: ["environment", "browser", "environment"],
        authorityHost: "http://login.example",
        tenantId: "not a tenant",
        clientId: "c",
        managedIdentityResourceId: "/subscriptions/x",
        caFiles: [],
        clientSecret: "inline secrets are not accepted",
      },
    ]);
    expect(problems).toEqual([
      "registry.credentialProviders[0].clientSecret: unknown key for type azure",
      "registry.credentialProviders[0].sources[1]: must be one of environment, workloadIdentity, managedIdentity, azureCli",
      "registry.credentialProviders[0].sources[2]: environment is listed twice",
      "registry.credentialProviders[0].tenantId: must be a tenant id (a GUID) or a domain name",
      "registry.credentialProviders[0]: give clientId or managedIdentityResourceId for a managed identity, not both",
      "registry.credentialProviders[0].authorityHost: must be an https:// URL without query or credentials",
      "registry.credentialProviders[0].caFiles: must be a non-empty list of file paths",
    ]);
  });

  it("an azure provider must name its hosts (its Entra tokens go nowhere else)", () => {
    const { problems } = parseCredentialProviderSpecs([{ name: "acr", type: "azure" }]);
    expect(problems).toEqual([
      'registry.credentialProviders[0].hosts: required for an azure provider (it sends Microsoft Entra tokens): list the registries, e.g. "*.azurecr.io"',
    ]);
  });

  it("doctor: a provider none of whose sources is set up here says what each lacks", () => {
    setEnv({});
    const r = resolverFor({ sources: ["environment", "workloadIdentity"] });
    expect(r.providers()[0]!.check!()).toEqual([
      expect.stringMatching(
        /^no Azure credential source is set up here \(environment: needs a tenant and client id .*; workloadIdentity: needs a tenant id, a client id and a federated token file/,
      ),
    ]);
    setEnv({
      AZURE_TENANT_ID: w.tenantId,
      AZURE_CLIENT_ID: w.workload.clientId,
      AZURE_FEDERATED_TOKEN_FILE: w.workload.tokenFile,
    });
    expect(r.providers()[0]!.check!()).toEqual([]);
    // Managed identity and az can only tell by being asked: never reported up front.
    setEnv({});
    expect(resolverFor({ sources: ["environment", "managedIdentity"] }).providers()[0]!.check!()).toEqual([]);
  });

  it("defaults to DefaultAzureCredential's order without developer-only sources", () => {
    const { specs } = parseCredentialProviderSpecs([{ name: "acr", type: "azure", hosts: ["*.azurecr.io"] }]);
    expect(specs[0]).toMatchObject({
      type: "azure",
      credential: { sources: ["environment", "workloadIdentity", "managedIdentity", "azureCli"] },
    });
  });
});

describe("provider failure metrics", () => {
  it("tollgate_registry_credential_errors_total{provider,type} follows the resolver's failures", async () => {
    setEnv({});
    const r = resolverFor({ sources: ["environment"] });
    const m = new AgentMetrics();
    m.watchCredentialProviders(() => r.status());
    await expect(
      r.credentialFor({ host: w.acr.host, image: `${w.acr.host}/team/app` }),
    ).rejects.toMatchObject({
      code: "REGISTRY_AUTH",
    });
    const text = await m.registry.metrics();
    expect(text).toContain('tollgate_registry_credential_errors_total{provider="acr",type="azure"} 1');
    expect(text).toContain('tollgate_registry_credential_requests_total{provider="acr",type="azure"} 1');
  });
});

describe("secrets", () => {
  it("no secret or token appears in any error, status or verdict", async () => {
    // Everything the tests above produced that an operator could see, gathered again.
    setEnv({ AZURE_TENANT_ID: w.tenantId, AZURE_CLIENT_ID: w.sp.clientId, AZURE_CLIENT_SECRET: w.sp.secret });
    const r = resolverFor({ sources: ["environment"] });
    const engine = engineWith(r);
    const verdicts = [
      await engine.verify({ reference: signed.ref, digest: signed.digest }, await policy()),
      await engine.verify({ reference: unsigned.ref, digest: unsigned.digest }, await policy()),
    ];
    setEnv({
      AZURE_TENANT_ID: w.tenantId,
      AZURE_CLIENT_ID: w.sp.clientId,
      AZURE_CLIENT_SECRET: `${w.sp.secret}x`,
    });
    const bad = resolverFor({ sources: ["environment"] });
    const failed = await engineWith(bad).verify(
      { reference: signed.ref, digest: signed.digest },
      await policy(),
    );
    const haystack = JSON.stringify([verdicts, failed, r.status(), bad.status()]);
    expect(haystack).toContain("AADSTS7000215");
    const secrets = [...w.secrets(), `${w.sp.secret}x`];
    expect(secrets.length).toBeGreaterThan(5);
    for (const s of secrets) expect(haystack.includes(s), `found ${s.slice(0, 12)}…`).toBe(false);
  });
});
