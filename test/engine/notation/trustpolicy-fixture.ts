// Images signed by the real `notation sign` and two notation configuration directories whose
// trustpolicy.json holds several trust policies (scoped and "*", every level, overrides, TSA
// on/off, verifyTimestamp, a missing store, skip), plus one without "*" for scope misses.
// Shared by the agreement table (engine) and the containerd e2e (agent), which must both
// reach the verdicts `notation verify` reaches over the same files.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { type PushedImage, pushBusyboxImage } from "../../support/images.js";
import { notationSign, signerHome } from "./harness.js";
import { CODESIGN_EXT, type KeyCert, makeLeaf, makeRoot, startTsa, type Tsa } from "./pki.js";

export interface DocCase {
  name: string;
  image: PushedImage;
  /** Which configuration directory decides. */
  home: NotationHome;
  /** What notation's trust policy rules say. */
  expect: "pass" | "fail";
}

export interface NotationHome {
  /** HOME/XDG_CONFIG_HOME for the notation CLI. */
  home: string;
  /** <home>/notation: the directory `tollgate policy import notation --dir` reads. */
  configDir: string;
}

export interface TrustPolicyFixture {
  cases: DocCase[];
  tsa: Tsa;
  /** Wall-clock time after which the short-lived leaf has expired. */
  expiredAfter: number;
  close(): Promise<void>;
}

const SUBJ = { C: "US", ST: "WA", L: "Seattle", O: "Tollgate Test" };

function writeHome(
  dir: string,
  name: string,
  doc: unknown,
  stores: { type: string; name: string; certs: KeyCert[] }[],
): NotationHome {
  const home = path.join(dir, `home-${name}`);
  const configDir = path.join(home, "notation");
  mkdirSync(configDir, { recursive: true });
  writeFileSync(path.join(configDir, "trustpolicy.json"), JSON.stringify(doc, null, 2));
  for (const s of stores) {
    const d = path.join(configDir, "truststore", "x509", s.type, s.name);
    mkdirSync(d, { recursive: true });
    for (const [i, c] of s.certs.entries()) writeFileSync(path.join(d, `${i}-${c.name}.pem`), c.certPem);
  }
  return { home, configDir };
}

/**
 * Builds everything; `registryHost` is where images are pushed and signed, `scopeHost` the
 * host the verifier will see in references (a proxy in front of the registry, or the same).
 * The short-lived leaf is valid for `shortLivedMs`; callers wait for `expiredAfter`.
 */
export async function buildTrustPolicyFixture(
  dir: string,
  registryHost: string,
  scopeHost: string = registryHost,
  shortLivedMs = 30_000,
): Promise<TrustPolicyFixture> {
  const pki = path.join(dir, "pki");
  const tsa = await startTsa(pki);
  const rootA = makeRoot(pki, "root-a", { ...SUBJ, CN: "Tollgate Test Root A" });
  const rootB = makeRoot(pki, "root-b", { ...SUBJ, O: "Other Org", CN: "Other Root B" });
  const otherTsaRoot = makeRoot(pki, "other-tsa-root", { ...SUBJ, CN: "Some Other TSA Root" });
  const now = Date.now();
  const short = makeLeaf(pki, "leaf-short", { ...SUBJ, CN: "short-lived signer" }, rootA, CODESIGN_EXT, {
    start: new Date(now - 3600_000),
    end: new Date(now + shortLivedMs),
  });
  const good = makeLeaf(pki, "leaf-good", { ...SUBJ, CN: "good signer" }, rootA, CODESIGN_EXT);
  const other = makeLeaf(pki, "leaf-b", { ...SUBJ, O: "Other Org", CN: "other signer" }, rootB, CODESIGN_EXT);

  const imgs = new Map<string, PushedImage>();
  const push = (name: string): PushedImage => {
    const p = pushBusyboxImage(registryHost, `doc/${name}`, "v1", { marker: `doc-${name}` });
    const img = {
      ...p,
      repo: `${scopeHost}/doc/${name}`,
      ref: `${scopeHost}/doc/${name}:v1`,
      pinned: `${scopeHost}/doc/${name}@${p.digest}`,
    };
    imgs.set(name, img);
    return p;
  };
  const ts = { timestampUrl: tsa.url, timestampRoot: tsa.root.certPath };
  // The short-lived leaf signs first, so its validity window comfortably covers it.
  const shortHome = signerHome(pki, short);
  for (const n of ["expired-strict", "expired-permissive"]) await notationSign(shortHome, push(n).pinned);
  for (const n of ["ts-on", "ts-off", "ts-after-expiry", "ts-other-tsa"])
    await notationSign(shortHome, push(n).pinned, ts);
  const goodHome = signerHome(pki, good);
  for (const n of ["scoped-ok", "scoped-ok-2", "wrong-id", "missing-store-audit", "missing-store-strict"])
    await notationSign(goodHome, push(n).pinned);
  await notationSign(goodHome, push("unscoped-a").pinned);
  for (const n of ["fresh-ts-after-expiry", "fresh-ts-always"])
    await notationSign(goodHome, push(n).pinned, ts);
  const otherHome = signerHome(pki, other);
  for (const n of ["untrusted-strict", "untrusted-audit", "untrusted-override", "unscoped-b"])
    await notationSign(otherHome, push(n).pinned);
  for (const n of ["unsigned-strict", "skipped", "unsigned-unscoped"]) push(n);

  const scope = (...names: string[]) => names.map((n) => `${scopeHost}/doc/${n}`);
  const idA = "x509.subject: C=US, ST=WA, O=Tollgate Test";
  const pol = (
    name: string,
    scopes: string[],
    level: string,
    trustStores: string[],
    extra: Record<string, unknown> = {},
    trustedIdentities: string[] = ["*"],
  ) => ({
    name,
    registryScopes: scopes,
    signatureVerification: { level, ...extra },
    trustStores,
    trustedIdentities,
  });
  const docMain = {
    version: "1.0",
    trustPolicies: [
      pol(
        "team-a",
        scope("scoped-ok", "scoped-ok-2", "untrusted-strict", "unsigned-strict"),
        "strict",
        ["ca:Root_A"],
        {},
        [idA],
      ),
      pol("other-team", scope("wrong-id"), "strict", ["ca:Root_A"], {}, [
        "x509.subject: C=US, ST=WA, O=Someone Else",
      ]),
      pol("audit", scope("untrusted-audit"), "audit", ["ca:Root_A"]),
      pol("override", scope("untrusted-override"), "strict", ["ca:Root_A"], {
        override: { authenticity: "log" },
      }),
      pol("expiry-strict", scope("expired-strict", "ts-off"), "strict", ["ca:Root_A"]),
      pol("expiry-permissive", scope("expired-permissive"), "permissive", ["ca:Root_A"]),
      pol("tsa-on", scope("ts-on"), "strict", ["ca:Root_A", "tsa:tsa"]),
      // afterCertExpiry: the (untrusted) timestamp only matters once the leaf has expired.
      pol(
        "tsa-after-expiry",
        scope("ts-after-expiry", "fresh-ts-after-expiry"),
        "strict",
        ["ca:Root_A", "tsa:other-tsa"],
        {
          verifyTimestamp: "afterCertExpiry",
        },
      ),
      pol("tsa-other", scope("ts-other-tsa", "fresh-ts-always"), "strict", ["ca:Root_A", "tsa:other-tsa"]),
      pol("missing-audit", scope("missing-store-audit"), "audit", ["ca:absent"]),
      pol("missing-strict", scope("missing-store-strict"), "strict", ["ca:absent"]),
      pol("skip", scope("skipped"), "skip", [], {}, []),
      pol("everything-else", ["*"], "strict", ["ca:root-b"]),
    ],
  };
  const stores = [
    { type: "ca", name: "Root_A", certs: [rootA] },
    { type: "ca", name: "root-b", certs: [rootB] },
    { type: "tsa", name: "tsa", certs: [tsa.root] },
    { type: "tsa", name: "other-tsa", certs: [otherTsaRoot] },
  ];
  const main = writeHome(dir, "main", docMain, stores);
  // No "*": every repository not named is a scope miss.
  const noGlobal = writeHome(
    dir,
    "no-global",
    {
      version: "1.0",
      trustPolicies: [pol("only-a", scope("unscoped-a"), "strict", ["ca:Root_A"])],
    },
    stores,
  );
  const c = (name: string, expect: "pass" | "fail", home = main): DocCase => ({
    name,
    image: imgs.get(name)!,
    home,
    expect,
  });
  const cases: DocCase[] = [
    c("scoped-ok", "pass"),
    c("scoped-ok-2", "pass"),
    c("untrusted-strict", "fail"),
    c("unsigned-strict", "fail"),
    c("wrong-id", "fail"),
    c("untrusted-audit", "pass"),
    c("untrusted-override", "pass"),
    c("expired-strict", "fail"),
    c("expired-permissive", "pass"),
    c("ts-on", "pass"),
    c("ts-off", "fail"),
    c("ts-after-expiry", "fail"),
    c("ts-other-tsa", "fail"),
    c("fresh-ts-after-expiry", "pass"),
    c("fresh-ts-always", "fail"),
    c("missing-store-audit", "pass"),
    c("missing-store-strict", "fail"),
    c("skipped", "pass"),
    c("unscoped-a", "fail"),
    c("unscoped-b", "pass"),
    c("unsigned-unscoped", "fail"),
    { ...c("unscoped-b", "fail", noGlobal), name: "scope miss (no * policy)" },
    { ...c("unscoped-a", "pass", noGlobal), name: "only scoped policy" },
  ];
  return { cases, tsa, expiredAfter: now + shortLivedMs + 1500, close: () => tsa.close() };
}
