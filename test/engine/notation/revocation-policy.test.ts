// CRL revocation against a loopback HTTP CRL server (openssl-made CRLs), and the
// verification-level table with overrides.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineError } from "../../../src/engine/errors.js";
import { CrlCache } from "../../../src/engine/notation/crl.js";
import { enforcement, selectPolicy, validatePolicies } from "../../../src/engine/notation/policy.js";
import type { NotationTrustPolicy } from "../../../src/engine/notation/types.js";
import { verifyEnvelope } from "../../../src/engine/notation/verify.js";
import { craftJws } from "./harness.js";
import { CODESIGN_EXT, type KeyCert, makeLeaf, makeRoot } from "./pki.js";

let server: http.Server;
let port = 0;
let crlBody: Buffer | undefined;
let status = 200;
let dir: string;
let root: KeyCert;
let leaf: KeyCert;
let crlEmpty: Buffer;
let crlRevoked: Buffer;

const subject = {
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: `sha256:${"b".repeat(64)}`,
  size: 7,
};
const pol = (
  level: NotationTrustPolicy["signatureVerification"]["level"],
  override = {},
): NotationTrustPolicy => ({
  name: `p-${level}`,
  registryScopes: ["*"],
  signatureVerification: { level, override },
  trustStores: ["ca:root"],
  trustedIdentities: ["*"],
});

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
    {
      cwd: d,
      stdio: "ignore",
    },
  );
  execFileSync("openssl", ["crl", "-in", `${out}.pem`, "-outform", "DER", "-out", `${out}.der`], { cwd: d });
  return readFileSync(path.join(d, `${out}.der`));
}

beforeAll(async () => {
  server = http.createServer((_req, res) => {
    if (status !== 200 || !crlBody) {
      res.writeHead(status === 200 ? 404 : status);
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": "application/pkix-crl" });
    res.end(crlBody);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address();
  port = typeof a === "object" && a ? a.port : 0;
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-notation-crl-"));
  root = makeRoot(dir, "root", { C: "US", ST: "WA", O: "CRL Test", CN: "CRL Root" });
  leaf = makeLeaf(dir, "leaf", { C: "US", ST: "WA", O: "CRL Test", CN: "crl leaf" }, root, [
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
    {
      cwd: d,
      stdio: "ignore",
    },
  );
  crlRevoked = gencrl("revoked");
}, 60_000);

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

async function check(level: NotationTrustPolicy["signatureVerification"]["level"], override = {}) {
  const env = craftJws({ key: leaf, target: subject });
  return verifyEnvelope(
    env,
    "application/jose+json",
    subject,
    pol(level, override),
    [{ type: "ca", name: "root", certificates: [root.certPem] }],
    { verifierName: "n", revocation: { enabled: true, timeoutMs: 2000 }, crlCache: new CrlCache() },
  );
}

describe("CRL revocation", () => {
  it("passes with an empty CRL, fails when the leaf is revoked", async () => {
    crlBody = crlEmpty;
    status = 200;
    expect((await check("strict")).result).toBe("passed");
    crlBody = crlRevoked;
    const r = await check("strict");
    expect(r.result).toBe("failed");
    expect(r.check).toBe("revocation");
    expect(r.reason).toContain("CN=crl leaf");
    // permissive logs revocation
    const p = await check("permissive");
    expect(p.result).toBe("passed");
    expect(p.warnings?.[0]).toContain("revoked");
    // revocation: skip
    expect((await check("strict", { revocation: "skip" })).result).toBe("passed");
  });

  it("an unreachable CRL is REVOCATION_UNAVAILABLE when enforced, a warning when logged", async () => {
    status = 503;
    const r = await check("strict");
    expect(r.result).toBe("error");
    expect(r.details?.code).toBe("REVOCATION_UNAVAILABLE");
    expect(r.reason).toContain("HTTP 503");
    const p = await check("strict", { revocation: "log" });
    expect(p.result).toBe("passed");
    expect(p.warnings?.[0]).toContain("unknown");
  });

  it("an oversized CRL is refused", async () => {
    status = 200;
    crlBody = Buffer.concat([crlEmpty, Buffer.alloc(4096)]);
    const env = craftJws({ key: leaf, target: subject });
    const r = await verifyEnvelope(
      env,
      "application/jose+json",
      subject,
      pol("strict"),
      [{ type: "ca", name: "root", certificates: [root.certPem] }],
      { verifierName: "n", revocation: { enabled: true, maxCrlBytes: 1024 }, crlCache: new CrlCache() },
    );
    expect(r.result).toBe("error");
    expect(r.reason).toContain("larger than 1024");
  });
});

describe("trust policy semantics", () => {
  it("levels and overrides follow the spec table", () => {
    expect(enforcement(pol("strict"))).toEqual({
      integrity: "enforce",
      authenticity: "enforce",
      authenticTimestamp: "enforce",
      expiry: "enforce",
      revocation: "enforce",
    });
    expect(enforcement(pol("permissive")).expiry).toBe("log");
    expect(enforcement(pol("audit")).authenticity).toBe("log");
    expect(enforcement(pol("strict", { expiry: "log", revocation: "skip" }))).toMatchObject({
      expiry: "log",
      revocation: "skip",
    });
    for (const bad of [{ integrity: "log" }, { authenticity: "skip" }, { nonsense: "log" }]) {
      expect(() => enforcement(pol("strict", bad))).toThrow(EngineError);
    }
    expect(() => enforcement(pol("skip", { expiry: "log" }))).toThrow(/cannot be customized/);
  });

  it("selects the exact registry scope before the global one; rejects two globals", () => {
    const a = { ...pol("strict"), name: "a", registryScopes: ["r.example/team/app"] };
    const g = { ...pol("audit"), name: "g" };
    expect(selectPolicy([g, a], "r.example/team/app:1.0")?.name).toBe("a");
    expect(selectPolicy([g, a], "r.example/team/app@sha256:abc")?.name).toBe("a");
    expect(selectPolicy([g, a], "r.example/other:1")?.name).toBe("g");
    expect(selectPolicy([a], "r.example/other:1")).toBeUndefined();
    expect(() => validatePolicies([g, { ...g, name: "g2" }])).toThrow(/global scope/);
    expect(() =>
      validatePolicies([{ ...a, trustedIdentities: ["x509.subject: C=US, O=missing state"] }]),
    ).toThrow(/C, ST/);
  });
});
