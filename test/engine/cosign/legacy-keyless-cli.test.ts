// Legacy keyless `.sig` signatures (made byte for byte in cosign 2's format against the mock
// Sigstore) pushed to a loopback docker-registry: our verdict vs the real
// `cosign verify --trusted-root … --certificate-identity … --certificate-oidc-issuer …` (3.1.1)
// given the same trusted root, on pass / wrong identity / wrong issuer / tampered / no Rekor bundle.
import { execFile } from "node:child_process";
import crypto from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyCosign } from "../../../src/engine/cosign/index.js";
import type { SignatureCheck } from "../../../src/engine/types.js";
import { type PushedImage, pushBusyboxImage } from "../../support/images.js";
import { type LocalRegistry, startRegistry } from "../../support/registry.js";
import { tools } from "../../support/tools.js";
import {
  type LegacySignature,
  legacyKeylessSignature,
  type MockSigstore,
  startMockSigstore,
} from "./mock-sigstore.js";
import { putManifest, registrySource } from "./registry-source.js";

const run = promisify(execFile);
const SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";

interface Case {
  name: string;
  image: PushedImage;
  identity: string;
  issuer: string;
  expect: "pass" | "fail";
}

let dir: string;
let reg: LocalRegistry;
let sigstore: MockSigstore;
let rootFile: string;
const cases: Case[] = [];

const sha256 = (b: Uint8Array) => `sha256:${crypto.createHash("sha256").update(b).digest("hex")}`;

async function putBlob(repo: string, bytes: Uint8Array): Promise<string> {
  const digest = sha256(bytes);
  const start = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  if (start.status !== 202) throw new Error(`blob upload start: ${start.status}`);
  await start.body?.cancel();
  const loc = new URL(start.headers.get("location")!, reg.url);
  loc.searchParams.set("digest", digest);
  const put = await fetch(loc, {
    method: "PUT",
    headers: { "content-type": "application/octet-stream" },
    body: bytes,
  });
  if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${await put.text()}`);
  return digest;
}

/** The `.sig` manifest cosign 2 writes: OCI manifest, one simple-signing layer with annotations. */
async function attachLegacy(img: PushedImage, sig: LegacySignature): Promise<void> {
  const repo = img.repo.slice(reg.host.length + 1);
  const config = Buffer.from(
    JSON.stringify({
      architecture: "",
      created: "0001-01-01T00:00:00Z",
      history: [{ created: "0001-01-01T00:00:00Z" }],
      os: "",
      rootfs: { type: "layers", diff_ids: [sha256(sig.payload)] },
      config: {},
    }),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      size: config.length,
      digest: await putBlob(repo, config),
    },
    layers: [
      {
        mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
        size: sig.payload.length,
        digest: await putBlob(repo, sig.payload),
        annotations: sig.annotations,
      },
    ],
  };
  await putManifest(reg.url, repo, `${img.digest.replace(":", "-")}.sig`, manifest, manifest.mediaType);
}

async function cosignVerify(c: Case): Promise<{ ok: boolean; out: string }> {
  // --rekor-url and the proxy keep the CLI's online log search (when the Rekor bundle is
  // missing) on a closed loopback port: this test never leaves the machine.
  const args = [
    "verify",
    "--trusted-root",
    rootFile,
    "--allow-http-registry",
    "--rekor-url",
    "http://127.0.0.1:9",
  ]
    .concat(["--certificate-identity", c.identity, "--certificate-oidc-issuer", c.issuer])
    .concat([c.image.pinned]);
  try {
    const r = await run(tools.cosign, args, {
      env: {
        PATH: "/usr/bin:/bin",
        HOME: dir,
        DOCKER_CONFIG: path.join(dir, ".docker"),
        HTTPS_PROXY: "http://127.0.0.1:9",
        HTTP_PROXY: "http://127.0.0.1:9",
        NO_PROXY: reg.host.split(":")[0]!,
      },
      cwd: dir,
      timeout: 120_000,
    });
    return { ok: true, out: r.stderr };
  } catch (e) {
    const err = e as { stderr?: string; code?: unknown };
    if (typeof err.code !== "number") throw e;
    return { ok: false, out: (err.stderr ?? "").trim().split("\n").pop() ?? "" };
  }
}

async function ours(c: Case): Promise<{ ok: boolean; checks: SignatureCheck[] }> {
  const repo = c.image.repo.slice(reg.host.length + 1);
  const src = await registrySource(reg.url, reg.host, repo, c.image.digest);
  const checks = await verifyCosign(
    src,
    {
      keyless: {
        trustedRoot: sigstore.trustedRoot,
        identities: [{ subject: c.identity, issuer: c.issuer }],
      },
    },
    { verifierName: "legacy" },
  );
  return { ok: checks.some((k) => k.result === "passed"), checks };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-legacy-cli-"));
  reg = await startRegistry(path.join(dir, "registry"));
  // Leaves start 2 s after the CA's root (cosign verifies the chain at the leaf's notBefore).
  sigstore = await startMockSigstore({ caBackdateMs: -2000 });
  await new Promise((r) => setTimeout(r, 2500));
  rootFile = path.join(dir, "trusted_root.json");
  writeFileSync(rootFile, JSON.stringify(sigstore.trustedRoot));
  const signed = async (name: string, o: { rekorBundle?: boolean; tamper?: boolean; tsa?: boolean } = {}) => {
    const img = pushBusyboxImage(reg.host, `legacy/${name}`, "v1", { marker: `legacy-${name}` });
    const sig = await legacyKeylessSignature(sigstore, {
      digest: img.digest,
      repository: img.repo,
      subject: SUBJECT,
      issuer: ISSUER,
      ...(o.rekorBundle === false ? { rekorBundle: false } : {}),
      ...(o.tsa ? { tsa: true } : {}),
    });
    // Tampered: the signed payload gains an annotation after signing.
    const payload = o.tamper
      ? Buffer.from(sig.payload.toString().replace('"optional":null', '"optional":{"injected":"yes"}'))
      : sig.payload;
    await attachLegacy(img, { ...sig, payload });
    return img;
  };
  const good = await signed("good");
  const ts = await signed("timestamped", { tsa: true });
  const tampered = await signed("tampered", { tamper: true });
  const noRekor = await signed("no-rekor", { rekorBundle: false });
  cases.push(
    { name: "pass", image: good, identity: SUBJECT, issuer: ISSUER, expect: "pass" },
    { name: "pass (with RFC 3161 timestamp)", image: ts, identity: SUBJECT, issuer: ISSUER, expect: "pass" },
    { name: "wrong identity", image: good, identity: `${SUBJECT}x`, issuer: ISSUER, expect: "fail" },
    {
      name: "wrong issuer",
      image: good,
      identity: SUBJECT,
      issuer: "https://accounts.example.com",
      expect: "fail",
    },
    { name: "tampered payload", image: tampered, identity: SUBJECT, issuer: ISSUER, expect: "fail" },
    { name: "missing Rekor bundle", image: noRekor, identity: SUBJECT, issuer: ISSUER, expect: "fail" },
  );
}, 120_000);

afterAll(async () => {
  await reg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("legacy keyless .sig: ours vs `cosign verify` with the same trusted root", () => {
  it("agrees on pass / wrong identity / wrong issuer / tampered / missing Rekor bundle", async () => {
    const rows: string[] = [];
    const problems: string[] = [];
    for (const c of cases) {
      const cli = await cosignVerify(c);
      const mine = await ours(c);
      const v = (ok: boolean) => (ok ? "pass" : "fail");
      const why = mine.checks.map((k) => `${k.result}/${k.check}: ${k.reason}`).join(" | ");
      rows.push(
        `${c.name.padEnd(32)} ${v(cli.ok).padEnd(7)} ${v(mine.ok).padEnd(6)} ${why.slice(0, 110)} || cosign: ${cli.out.slice(0, 160)}`,
      );
      if (v(cli.ok) !== c.expect)
        problems.push(`${c.name}: cosign=${v(cli.ok)}, expected ${c.expect}: ${cli.out}`);
      if (cli.ok !== mine.ok) problems.push(`${c.name}: ours=${v(mine.ok)} cosign=${v(cli.ok)} (${why})`);
    }
    console.log(
      [`${"case".padEnd(32)} ${"cosign".padEnd(7)} ${"ours".padEnd(6)} our reason || cosign`, ...rows].join(
        "\n",
      ),
    );
    expect(problems).toEqual([]);
  }, 120_000);
});
