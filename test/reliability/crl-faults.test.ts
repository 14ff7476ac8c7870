// CRL endpoint faults through the engine: an ImagePolicy with a Notary Project verifier at
// level "strict" (revocation: enforce), a leaf certificate whose CRL distribution point is a
// loopback server we control, the real notation verifier and policy compiler. CRL endpoint
// down → the verification cannot complete → failure policy (Closed denies, Open allows);
// endpoint back → verified; leaf revoked → rejected.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compilePolicy, createEngineCore } from "../../src/engine/index.js";
import { CrlCache, verifyNotation } from "../../src/engine/notation/index.js";
import type { ArtifactSource, OciManifest, Verdict } from "../../src/engine/types.js";
import { craftJws } from "../engine/notation/harness.js";
import { CODESIGN_EXT, type KeyCert, makeLeaf, makeRoot } from "../engine/notation/pki.js";
import { sha256 } from "../support/hostile-registry.js";
import { DecisionTally, recordResult } from "./results.js";

const FILE = "test/reliability/crl-faults.test.ts";
const VERIFY_TIMEOUT_MS = 20_000;
let server: http.Server;
let port = 0;
let mode: "ok" | "down" | "hang" | "revoked" = "ok";
let crlEmpty: Buffer;
let crlRevoked: Buffer;
let root: KeyCert;
let leaf: KeyCert;
let dir: string;

const subjectDesc = {
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: `sha256:${"d".repeat(64)}`,
  size: 42,
};

function gencrl(out: string): Buffer {
  const d = path.join(dir, "ca");
  execFileSync(
    "openssl",
    [
      "ca",
      "-gencrl",
      "-config",
      "ca.cnf",
      "-cert",
      root.certPath,
      "-keyfile",
      root.keyPath,
      "-out",
      `${out}.pem`,
    ],
    { cwd: d, stdio: "ignore" },
  );
  execFileSync("openssl", ["crl", "-in", `${out}.pem`, "-outform", "DER", "-out", `${out}.der`], { cwd: d });
  return readFileSync(path.join(d, `${out}.der`));
}

beforeAll(async () => {
  server = http.createServer((_req, res) => {
    if (mode === "hang") return;
    if (mode === "down") {
      res.writeHead(503);
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": "application/pkix-crl" });
    res.end(mode === "revoked" ? crlRevoked : crlEmpty);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-rel-crl-"));
  root = makeRoot(dir, "root", { C: "US", ST: "WA", O: "Rel", CN: "Rel Root" });
  leaf = makeLeaf(dir, "leaf", { C: "US", ST: "WA", O: "Rel", CN: "rel leaf" }, root, [
    ...CODESIGN_EXT,
    `crlDistributionPoints = URI:http://127.0.0.1:${port}/root.crl`,
  ]);
  const d = path.join(dir, "ca");
  mkdirSync(d, { recursive: true });
  writeFileSync(path.join(d, "index.txt"), "");
  writeFileSync(
    path.join(d, "ca.cnf"),
    "[ca]\ndefault_ca=c\n[c]\ndatabase=index.txt\ndefault_md=sha256\ndefault_crl_days=1\n",
  );
  crlEmpty = gencrl("empty");
  execFileSync(
    "openssl",
    ["ca", "-config", "ca.cnf", "-revoke", leaf.certPath, "-cert", root.certPath, "-keyfile", root.keyPath],
    { cwd: d, stdio: "ignore" },
  );
  crlRevoked = gencrl("revoked");
}, 60_000);

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

/** An in-memory registry view holding one JWS signature for the subject. */
function source(): ArtifactSource {
  const env = Buffer.from(craftJws({ key: leaf, target: subjectDesc }));
  const envDesc = { mediaType: "application/jose+json", digest: sha256(env), size: env.length };
  const manifest: OciManifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.cncf.notary.signature", digest: sha256("{}"), size: 2 },
    layers: [envDesc],
    subject: subjectDesc,
  };
  return {
    subject: {
      reference: "reg.example/app@" + subjectDesc.digest,
      digest: subjectDesc.digest,
      descriptor: subjectDesc,
    },
    artifacts: [
      {
        digest: sha256(JSON.stringify(manifest)),
        artifactType: "application/vnd.cncf.notary.signature",
        manifest,
        source: "referrers-api",
      },
    ],
    truncated: false,
    async fetchBlob() {
      return env;
    },
  } as ArtifactSource;
}

async function policy(failurePolicy: "Closed" | "Open") {
  return compilePolicy({
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name: `crl-${failurePolicy.toLowerCase()}` },
    spec: {
      failurePolicy,
      verifiers: [
        {
          name: "notary",
          notation: {
            level: "strict",
            trustedIdentities: ["*"],
            trustStores: [{ type: "ca", name: "root", certificates: root.certPem }],
          },
        },
      ],
    },
  });
}

describe("CRL endpoint faults", () => {
  it("CRL endpoint down or hung: failure policy decides; back up: verified; leaf revoked: rejected", async () => {
    const closed = await policy("Closed");
    const open = await policy("Open");
    const engine = () =>
      createEngineCore(
        {
          discover: async () => source(),
          // A fresh CRL cache per engine: a CRL fetched earlier is legitimately reused until
          // its nextUpdate, which would hide the endpoint's state from the next case.
          notation: (src, cfg, o) => verifyNotation(src, cfg, { ...o, crlCache: new CrlCache() }),
          cosign: async () => [],
        },
        { cache: { failedTTLSeconds: 0 }, verificationTimeoutMs: VERIFY_TIMEOUT_MS },
      );
    const subject = { reference: "reg.example/app:v1", digest: subjectDesc.digest };
    const seen: Record<string, Verdict> = {};
    // A verdict later than the engine's own verification bound missed its deadline.
    const tally = new DecisionTally(VERIFY_TIMEOUT_MS);
    for (const m of ["ok", "down", "hang", "revoked"] as const) {
      mode = m;
      seen[`${m}/Closed`] = await tally.run(() => engine().verify(subject, closed));
      seen[`${m}/Open`] = await tally.run(() => engine().verify(subject, open));
    }
    mode = "ok";
    const summary = Object.entries(seen).map(
      ([k, v]) => `${k}: ${v.outcome}${v.allowed ? " (allowed)" : ""}`,
    );
    expect(seen["ok/Closed"], JSON.stringify(seen["ok/Closed"]?.reasons)).toMatchObject({
      allowed: true,
      outcome: "verified",
    });
    // Revoked signer: a verdict, denied whatever the failure policy.
    expect(seen["revoked/Closed"], JSON.stringify(seen["revoked/Closed"]?.reasons)).toMatchObject({
      allowed: false,
      outcome: "rejected",
    });
    expect(seen["revoked/Open"]).toMatchObject({ allowed: false });
    for (const m of ["down", "hang"]) {
      expect(seen[`${m}/Closed`], JSON.stringify(seen[`${m}/Closed`]?.reasons)).toMatchObject({
        allowed: false,
        outcome: "failed",
      });
      expect(seen[`${m}/Open`]).toMatchObject({ allowed: true, outcome: "failed" });
    }
    expect(tally.counts()).toEqual({ crashes: 0, missedDeadlines: 0, undecided: 0 });
    recordResult({
      area: "fault",
      name: "CRL endpoint down / hung / revoked leaf",
      path: "engine (compiled ImagePolicy, notation level strict) → loopback CRL distribution point",
      cases: Object.keys(seen).length,
      outcome: `${summary.join("; ")}; slowest verdict ${(tally.slowestMs / 1000).toFixed(1)} s (limit ${VERIFY_TIMEOUT_MS / 1000} s)`,
      ...tally.counts(),
      file: FILE,
    });
  }, 120_000);
});
