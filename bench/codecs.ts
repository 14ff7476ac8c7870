// `npx tsx bench/codecs.ts`: the measurements behind the keep/replace decision recorded in
// the headers of src/engine/notation/{asn1,x509,crl,timestamp}.ts (issue 19). Not part of
// `npm run bench`: it compares our hand-written codecs with maintained libraries on material
// openssl makes here — parse cost (µs/op, and the ratio to ours in the same run) and whether
// a non-minimal DER length (forbidden by X.690 §10.1) is rejected. @sigstore/core is a
// production dependency; pkijs and @peculiar/x509 are only present as test dependencies'
// dependencies and are skipped when absent.
import "reflect-metadata";
import { execFileSync } from "node:child_process";
import { createPublicKey } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { ASN1Obj, RFC3161Timestamp, X509Certificate as SigstoreCert } from "@sigstore/core";
import { parseDer } from "../src/engine/notation/asn1.js";
import { parseCrl } from "../src/engine/notation/crl.js";
import { verifyTimestampToken } from "../src/engine/notation/timestamp.js";
import { parseCert } from "../src/engine/notation/x509.js";

const require = createRequire(import.meta.url);
// biome-ignore lint/suspicious/noExplicitAny: optional libraries, loaded untyped when present
function optional(name: string, from?: string): any {
  try {
    return from ? createRequire(require.resolve(from))(name) : require(name);
  } catch {
    return undefined;
  }
}
const pkijs = optional("pkijs");
const asn1js = optional("asn1js");
const peculiar = optional("@peculiar/x509", "@sigstore/mock") ?? optional("@peculiar/x509");

// ---- material ------------------------------------------------------------------------------

const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-codecs-"));
const at = (f: string) => path.join(dir, f);
const ssl = (...args: string[]) =>
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "ignore"] });
writeFileSync(
  at("ca.cnf"),
  `[ca]
default_ca=myca
[myca]
dir=.
database=index.txt
new_certs_dir=.
serial=serial
crlnumber=crlnumber
default_md=sha256
default_crl_days=7
policy=pol
[pol]
commonName=supplied
[v3_ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
[v3_leaf]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
crlDistributionPoints=URI:http://127.0.0.1:1/root.crl
[v3_tsa]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=critical,timeStamping
[tsa]
default_tsa=t
[t]
dir=.
serial=tsaserial
signer_cert=tsa.pem
signer_key=tsa.key
signer_digest=sha256
default_policy=1.2.3.4
digests=sha256
ess_cert_id_alg=sha256
ess_cert_id_chain=no
`,
);
for (const [f, v] of [
  ["serial", "01"],
  ["crlnumber", "01"],
  ["tsaserial", "01"],
])
  writeFileSync(at(f!), `${v}\n`);
writeFileSync(at("index.txt"), "");
ssl(
  "req",
  "-x509",
  "-newkey",
  "rsa:3072",
  "-nodes",
  "-keyout",
  "root.key",
  "-out",
  "root.pem",
  "-subj",
  "/CN=Root",
  "-days",
  "30",
  "-extensions",
  "v3_ca",
  "-config",
  "ca.cnf",
);
for (const [name, ext, serial] of [
  ["leaf", "v3_leaf", "1000"],
  ["tsa", "v3_tsa", "2000"],
]) {
  ssl(
    "req",
    "-newkey",
    "rsa:3072",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    `/CN=${name}`,
  );
  ssl(
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "root.pem",
    "-CAkey",
    "root.key",
    "-out",
    `${name}.pem`,
    "-days",
    "20",
    "-extfile",
    "ca.cnf",
    "-extensions",
    ext!,
    "-set_serial",
    serial!,
  );
}
ssl("x509", "-in", "leaf.pem", "-outform", "DER", "-out", "leaf.der");
const crlOf = (entries: number, out: string) => {
  const lines: string[] = [];
  for (let i = 1; i <= entries; i++)
    lines.push(
      `R\t300101000000Z\t260101000000Z,keyCompromise\t${(i + 4096).toString(16).toUpperCase()}\tunknown\t/CN=x${i}`,
    );
  writeFileSync(at("index.txt"), lines.length ? `${lines.join("\n")}\n` : "");
  ssl(
    "ca",
    "-gencrl",
    "-config",
    "ca.cnf",
    "-keyfile",
    "root.key",
    "-cert",
    "root.pem",
    "-out",
    `${out}.pem`,
  );
  ssl("crl", "-in", `${out}.pem`, "-outform", "DER", "-out", out);
  return readFileSync(at(out));
};
const crlSmall = crlOf(0, "small.crl");
const crlBig = crlOf(2000, "big.crl");
writeFileSync(at("data.bin"), "the signature bytes a Notary Project timestamp covers\n");
ssl("ts", "-query", "-data", "data.bin", "-sha256", "-cert", "-out", "q.tsq");
ssl(
  "ts",
  "-reply",
  "-config",
  "ca.cnf",
  "-queryfile",
  "q.tsq",
  "-inkey",
  "tsa.key",
  "-signer",
  "tsa.pem",
  "-chain",
  "root.pem",
  "-out",
  "r.tsr",
);
ssl("ts", "-reply", "-in", "r.tsr", "-token_out", "-out", "token.der");
const leaf = readFileSync(at("leaf.der"));
const token = readFileSync(at("token.der"));
const response = readFileSync(at("r.tsr"));
const data = readFileSync(at("data.bin"));
const tsaKey = createPublicKey(readFileSync(at("tsa.pem")));
rmSync(dir, { recursive: true, force: true });

// ---- measurements --------------------------------------------------------------------------

const ab = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
let baseline = 0;
function bench(name: string, n: number, f: () => unknown, isBaseline = false): void {
  try {
    f();
  } catch (e) {
    console.log(`  ${name.padEnd(56)} fails: ${(e as Error).message.slice(0, 80)}`);
    return;
  }
  for (let i = 0; i < Math.min(50, n); i++) f();
  const t = performance.now();
  for (let i = 0; i < n; i++) f();
  const us = ((performance.now() - t) / n) * 1000;
  if (isBaseline) baseline = us;
  const ratio = isBaseline ? "" : `  ×${(us / baseline).toFixed(2)} of ours`;
  console.log(`  ${name.padEnd(56)} ${us.toFixed(1).padStart(9)} µs/op${ratio}`);
}
const nonMinimal = (der: Buffer) => Buffer.concat([Buffer.from([0x30, 0x83, 0x00]), der.subarray(2)]);
function strict(name: string, f: () => unknown): void {
  let verdict = "accepts (not DER)";
  try {
    f();
  } catch {
    verdict = "rejects";
  }
  console.log(`  ${name.padEnd(56)} ${verdict}`);
}

console.log(`DER reader — certificate, ${leaf.length} B`);
bench("ours: parseDer", 5000, () => parseDer(leaf), true);
bench("@sigstore/core: ASN1Obj.parseBuffer", 5000, () => ASN1Obj.parseBuffer(leaf));
if (asn1js) bench("asn1js: fromBER", 1000, () => asn1js.fromBER(ab(leaf)));

console.log("X.509 — certificate and the extensions the verifier reads");
bench("ours: parseCert (node:crypto X509Certificate + DER reader)", 2000, () => parseCert(leaf), true);
bench("@sigstore/core: X509Certificate.parse (no EKU, no CRL DP)", 2000, () => {
  const c = SigstoreCert.parse(leaf);
  return [c.extBasicConstraints?.isCA, c.extKeyUsage?.digitalSignature, c.subject];
});
if (peculiar)
  bench("@peculiar/x509: X509Certificate", 300, () => {
    const c = new peculiar.X509Certificate(leaf);
    return [c.getExtension(peculiar.BasicConstraintsExtension), c.getExtension(peculiar.KeyUsagesExtension)];
  });
if (pkijs) bench("pkijs: Certificate.fromBER", 300, () => pkijs.Certificate.fromBER(leaf).extensions?.length);

for (const [label, crl, n] of [
  [`CRL — no entries, ${crlSmall.length} B`, crlSmall, 1000],
  [`CRL — 2,000 entries, ${crlBig.length} B`, crlBig, 30],
] as const) {
  console.log(label);
  bench("ours: parseCrl", n, () => parseCrl(crl), true);
  if (peculiar) bench("@peculiar/x509: X509Crl", n, () => new peculiar.X509Crl(crl).entries.length);
  if (pkijs)
    bench("pkijs: CertificateRevocationList.fromBER", n, () => pkijs.CertificateRevocationList.fromBER(crl));
}

console.log(`RFC 3161 — TimeStampToken ${token.length} B (what a Notary Project envelope carries)`);
bench("ours: verifyTimestampToken (parse + verify)", 1000, () => verifyTimestampToken(token, data), true);
bench("@sigstore/core: RFC3161Timestamp.parse(token)", 1000, () => RFC3161Timestamp.parse(token).signingTime);
bench("@sigstore/core: parse(TimeStampResp) + verify", 1000, () => {
  RFC3161Timestamp.parse(response).verify(data, tsaKey);
});
if (pkijs)
  bench("pkijs: ContentInfo → SignedData → TSTInfo (parse only)", 300, () => {
    const sd = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(token).content });
    return pkijs.TSTInfo.fromBER(sd.encapContentInfo.eContent.getValue()).genTime;
  });

console.log("Strictness — a non-minimal length on the outer SEQUENCE (X.690 §10.1 forbids it)");
strict("ours: parseCert", () => parseCert(nonMinimal(leaf)));
strict("@sigstore/core: X509Certificate.parse", () => SigstoreCert.parse(nonMinimal(leaf)));
if (peculiar) strict("@peculiar/x509: X509Certificate", () => new peculiar.X509Certificate(nonMinimal(leaf)));
if (pkijs) strict("pkijs: Certificate.fromBER", () => pkijs.Certificate.fromBER(nonMinimal(leaf)));
strict("ours: parseCrl", () => parseCrl(nonMinimal(crlSmall)));
if (peculiar) strict("@peculiar/x509: X509Crl", () => new peculiar.X509Crl(nonMinimal(crlSmall)));
if (pkijs)
  strict("pkijs: CertificateRevocationList.fromBER", () =>
    pkijs.CertificateRevocationList.fromBER(nonMinimal(crlSmall)),
  );
strict("ours: verifyTimestampToken", () => verifyTimestampToken(nonMinimal(token), data));
if (pkijs) strict("pkijs: ContentInfo.fromBER", () => pkijs.ContentInfo.fromBER(nonMinimal(token)));
