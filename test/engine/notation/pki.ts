// Test PKI made with the real openssl CLI: roots, code-signing leaves (good, wrong EKU,
// short-lived), a TSA, and a tiny RFC 3161 responder (`openssl ts -reply`) on loopback.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { tools } from "../../support/tools.js";

export interface KeyCert {
  name: string;
  keyPath: string;
  certPath: string;
  /** Leaf + issuers (PEM), what notation's signingkeys.json certPath must hold. */
  chainPath: string;
  certPem: string;
}

function ossl(args: string[], cwd: string, input?: string): string {
  return execFileSync(tools.openssl, args, { cwd, encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] });
}

const DN_FIELDS: Record<string, string> = { C: "C", ST: "ST", L: "L", O: "O", OU: "OU", CN: "CN" };

function reqConfig(subject: Record<string, string>, ext: string[]): string {
  const dn = Object.entries(subject).map(([k, v]) => `${DN_FIELDS[k] ?? k} = ${v}`);
  return ["[req]", "prompt = no", "distinguished_name = dn", "[dn]", ...dn, "[ext]", ...ext, ""].join("\n");
}

export const CA_EXT = [
  "basicConstraints = critical, CA:TRUE",
  "keyUsage = critical, keyCertSign, cRLSign",
  "subjectKeyIdentifier = hash",
];
export const CODESIGN_EXT = [
  "basicConstraints = CA:FALSE",
  "keyUsage = critical, digitalSignature",
  "extendedKeyUsage = codeSigning",
];
export const SERVERAUTH_EXT = [
  "basicConstraints = CA:FALSE",
  "keyUsage = critical, digitalSignature",
  "extendedKeyUsage = serverAuth",
];
export const TSA_EXT = [
  "basicConstraints = CA:FALSE",
  "keyUsage = critical, digitalSignature",
  "extendedKeyUsage = critical, timeStamping",
];

/** Validity of a test certificate; both ends are exact. */
export interface Validity {
  start: Date;
  end: Date;
}

// Certificates start an hour in the past, as a real CA's do. A certificate whose notBefore
// is "now" makes any check with a tolerance window (an RFC 3161 timestamp's accuracy, a
// clock a second apart) depend on how fast the test ran between issuing and signing.
const BACKDATE_MS = 3600_000;
const DAY_MS = 86_400_000;

function validFor(days: number): Validity {
  const now = Date.now();
  return { start: new Date(now - BACKDATE_MS), end: new Date(now + days * DAY_MS) };
}

function keyCert(d: string, name: string, chainTail: string): KeyCert {
  const certPem = readFileSync(path.join(d, "cert.pem"), "utf8");
  writeFileSync(path.join(d, "chain.pem"), certPem + chainTail);
  return {
    name,
    keyPath: path.join(d, "key.pem"),
    certPath: path.join(d, "cert.pem"),
    chainPath: path.join(d, "chain.pem"),
    certPem,
  };
}

/** A new key and CSR in `d` (key.pem, csr.pem) for `subject` with extensions `ext`. */
function newRequest(d: string, subject: Record<string, string>, ext: string[]): void {
  mkdirSync(d, { recursive: true });
  writeFileSync(path.join(d, "req.cnf"), reqConfig(subject, ext));
  ossl(
    ["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "csr.pem"].concat([
      "-config",
      "req.cnf",
    ]),
    d,
  );
}

/**
 * Signs `d`/csr.pem into `d`/cert.pem with `openssl ca`, the one openssl command that takes an
 * exact start date. `issuer` undefined means self-signed with `d`/key.pem.
 */
function issue(d: string, issuer: KeyCert | undefined, validity: Validity): void {
  const fmt = (t: Date) => `${t.toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;
  writeFileSync(path.join(d, "index.txt"), "");
  // A random positive serial: leaves of one issuer must differ (CRL tests revoke by serial).
  writeFileSync(
    path.join(d, "serial"),
    `${(randomBytes(8).readBigUInt64BE() >> 1n).toString(16).padStart(16, "0")}\n`,
  );
  writeFileSync(
    path.join(d, "ca.cnf"),
    [
      "[ca]",
      "default_ca = c",
      "[c]",
      `dir = ${d}`,
      "database = $dir/index.txt",
      "new_certs_dir = $dir",
      "serial = $dir/serial",
      "default_md = sha256",
      "policy = p",
      "unique_subject = no",
      "[p]",
      "countryName = optional",
      "stateOrProvinceName = optional",
      "localityName = optional",
      "organizationName = optional",
      "commonName = supplied",
      "",
    ].join("\n"),
  );
  const signer = issuer
    ? ["-cert", issuer.certPath, "-keyfile", issuer.keyPath]
    : ["-selfsign", "-keyfile", path.join(d, "key.pem")];
  ossl(
    ["ca", "-batch", "-notext", "-config", "ca.cnf", "-preserveDN", ...signer]
      .concat(["-in", "csr.pem", "-out", "cert.pem", "-extfile", "req.cnf", "-extensions", "ext"])
      .concat(["-startdate", fmt(validity.start), "-enddate", fmt(validity.end)]),
    d,
  );
}

/** A self-signed CA, valid from an hour ago for 30 days. */
export function makeRoot(dir: string, name: string, subject: Record<string, string>): KeyCert {
  const d = path.join(dir, name);
  newRequest(d, subject, CA_EXT);
  issue(d, undefined, validFor(30));
  return keyCert(d, name, "");
}

/** A leaf issued by `issuer`; `validity` gives exact start/end, else from an hour ago for 7 days. */
export function makeLeaf(
  dir: string,
  name: string,
  subject: Record<string, string>,
  issuer: KeyCert,
  ext: string[],
  validity: Validity = validFor(7),
): KeyCert {
  const d = path.join(dir, name);
  newRequest(d, subject, ext);
  issue(d, issuer, validity);
  return keyCert(d, name, readFileSync(issuer.chainPath, "utf8"));
}

/** DER certificates of a PEM chain file, leaf first. */
export function chainDer(chainPath: string): Buffer[] {
  const pem = readFileSync(chainPath, "utf8");
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) =>
    Buffer.from(m[1]!.replace(/\s+/g, ""), "base64"),
  );
}

export interface Tsa {
  url: string;
  root: KeyCert;
  leaf: KeyCert;
  requests: number;
  close(): Promise<void>;
}

/** An RFC 3161 responder: node:http on 127.0.0.1 in front of `openssl ts -reply`. */
export async function startTsa(dir: string): Promise<Tsa> {
  const root = makeRoot(dir, "tsa-root", {
    C: "US",
    ST: "WA",
    O: "Tollgate Test TSA",
    CN: "Tollgate Test TSA Root",
  });
  const leaf = makeLeaf(
    dir,
    "tsa-leaf",
    { C: "US", ST: "WA", O: "Tollgate Test TSA", CN: "Tollgate TSA" },
    root,
    TSA_EXT,
  );
  const d = path.join(dir, "tsa");
  mkdirSync(d, { recursive: true });
  writeFileSync(path.join(d, "serial"), "01\n");
  writeFileSync(
    path.join(d, "tsa.cnf"),
    [
      "[tsa]",
      "default_tsa = t",
      "[t]",
      `serial = ${path.join(d, "serial")}`,
      `signer_cert = ${leaf.certPath}`,
      `signer_key = ${leaf.keyPath}`,
      `certs = ${root.certPath}`,
      "signer_digest = sha256",
      "default_policy = 1.2.3.4.1",
      "digests = sha256, sha384, sha512",
      "accuracy = secs:1",
      "ordering = no",
      "tsa_name = no",
      "ess_cert_id_chain = no",
      "ess_cert_id_alg = sha256",
      "",
    ].join("\n"),
  );
  let n = 0;
  const state = { requests: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > 64 * 1024) req.destroy();
      else chunks.push(c);
    });
    req.on("end", () => {
      try {
        const q = path.join(d, `q${++n}.tsq`);
        const r = path.join(d, `r${n}.tsr`);
        writeFileSync(q, Buffer.concat(chunks));
        ossl(["ts", "-reply", "-config", "tsa.cnf", "-queryfile", q, "-out", r], d);
        state.requests++;
        res.writeHead(200, { "content-type": "application/timestamp-reply" });
        res.end(readFileSync(r));
      } catch (e) {
        res.writeHead(500);
        res.end(String(e));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}/`,
    root,
    leaf,
    get requests() {
      return state.requests;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
