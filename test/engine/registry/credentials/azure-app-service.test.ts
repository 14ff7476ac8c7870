// The App Service style managed identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER, as on
// App Service, Functions and Container Apps) serving the azure credential provider. Its own
// file: MSAL picks the managed identity source once per process, and azure.test.ts uses IMDS.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compilePolicy, createEngine } from "../../../../src/engine/index.js";
import {
  buildCredentialResolver,
  parseCredentialProviderSpecs,
} from "../../../../src/engine/registry/credentials/index.js";
import { type AzureWorld, startAzureWorld } from "../../../support/azure-doubles.js";
import { pushBusyboxImage } from "../../../support/images.js";
import { cosignGenerateKeyPair, cosignSign } from "../../../support/signing.js";

let dir: string;
let w: AzureWorld;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-azure-appsvc-"));
  w = await startAzureWorld(dir);
}, 120_000);

afterAll(async () => {
  for (const k of ["IDENTITY_ENDPOINT", "IDENTITY_HEADER"]) delete process.env[k];
  await w?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("managed identity through the App Service style endpoint", () => {
  it("obtains a token with the identity header and reads the signatures of a private ACR image", async () => {
    const key = await cosignGenerateKeyPair(path.join(dir, "cosign"));
    const s = pushBusyboxImage(w.acr.registry.adminHost, "svc/app", "signed", { marker: "appsvc-signed" });
    const u = pushBusyboxImage(w.acr.registry.adminHost, "svc/app", "unsigned", {
      marker: "appsvc-unsigned",
    });
    await cosignSign({ ref: s.pinned, keyDir: key });
    process.env.IDENTITY_ENDPOINT = w.entra.appService.endpoint;
    process.env.IDENTITY_HEADER = w.entra.appService.header;
    const { specs, problems } = parseCredentialProviderSpecs([
      {
        name: "acr",
        type: "azure",
        hosts: [w.acr.host],
        sources: ["managedIdentity"],
        tenantId: w.tenantId,
        caFiles: [w.ca.caFile],
      },
    ]);
    expect(problems).toEqual([]);
    const engine = createEngine({
      registry: { credentialResolver: buildCredentialResolver(specs), hostsDir: w.hostsDir },
    });
    const policy = await compilePolicy({
      apiVersion: "tollgate.dev/v1alpha1",
      kind: "ImagePolicy",
      metadata: { name: "p" },
      spec: { verifiers: [{ name: "c", cosign: { keys: [{ name: "k", pem: key.publicKeyPem }] } }] },
    });
    const ok = await engine.verify({ reference: `${w.acr.host}/svc/app:signed`, digest: s.digest }, policy);
    expect(ok, JSON.stringify(ok.reasons)).toMatchObject({ outcome: "verified", allowed: true });
    const no = await engine.verify({ reference: `${w.acr.host}/svc/app:unsigned`, digest: u.digest }, policy);
    expect(no, JSON.stringify(no.reasons)).toMatchObject({ outcome: "rejected", allowed: false });
    expect(w.entra.requests).toEqual([
      expect.objectContaining({ kind: "appService", scope: "https://containerregistry.azure.net", ok: true }),
    ]);
    expect(w.acr.exchanges).toEqual([{ tenant: w.tenantId, ok: true }]);
  });
});
