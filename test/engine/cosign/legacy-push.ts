// Test-only: what cosign before v3 pushes for a legacy `.sig` / `.att` (an OCI manifest under
// the tag `sha256-<hex>.<suffix>` with one layer carrying its annotations), and the real
// cosign CLI run offline against a loopback registry. Shared by the legacy keyless agreement
// tests for signatures and attestations.
import { execFile } from "node:child_process";
import crypto from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import type { PushedImage } from "../../support/images.js";
import type { LocalRegistry } from "../../support/registry.js";
import { tools } from "../../support/tools.js";
import { putManifest } from "./registry-source.js";

const run = promisify(execFile);
const sha256 = (b: Uint8Array) => `sha256:${crypto.createHash("sha256").update(b).digest("hex")}`;

/** A legacy-keyless agreement case: one image, the identity asked for, cosign's expected answer. */
export interface AgreementCase {
  name: string;
  image: PushedImage;
  identity: string;
  issuer: string;
  expect: "pass" | "fail";
}

async function putBlob(reg: LocalRegistry, repo: string, bytes: Uint8Array): Promise<string> {
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

/** Pushes `sha256-<hex>.<suffix>` for `img`: one layer of `mediaType` with `annotations`. */
export async function attachLegacyLayer(
  reg: LocalRegistry,
  img: PushedImage,
  suffix: "sig" | "att",
  layer: { mediaType: string; bytes: Uint8Array; annotations: Record<string, string> },
): Promise<void> {
  const repo = img.repo.slice(reg.host.length + 1);
  const config = Buffer.from(
    JSON.stringify({
      architecture: "",
      created: "0001-01-01T00:00:00Z",
      history: [{ created: "0001-01-01T00:00:00Z" }],
      os: "",
      rootfs: { type: "layers", diff_ids: [sha256(layer.bytes)] },
      config: {},
    }),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      size: config.length,
      digest: await putBlob(reg, repo, config),
    },
    layers: [
      {
        mediaType: layer.mediaType,
        size: layer.bytes.length,
        digest: await putBlob(reg, repo, layer.bytes),
        annotations: layer.annotations,
      },
    ],
  };
  await putManifest(reg.url, repo, `${img.digest.replace(":", "-")}.${suffix}`, manifest, manifest.mediaType);
}

/**
 * The real cosign with `args`, offline: --rekor-url and the proxy keep any online log lookup
 * (when a Rekor bundle is missing) on a closed loopback port. Exit 0 → ok.
 */
export async function cosignOffline(
  args: string[],
  o: { dir: string; reg: LocalRegistry },
): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await run(tools.cosign, [...args, "--rekor-url", "http://127.0.0.1:9"], {
      env: {
        PATH: "/usr/bin:/bin",
        HOME: o.dir,
        DOCKER_CONFIG: path.join(o.dir, ".docker"),
        HTTPS_PROXY: "http://127.0.0.1:9",
        HTTP_PROXY: "http://127.0.0.1:9",
        NO_PROXY: o.reg.host.split(":")[0]!,
      },
      cwd: o.dir,
      timeout: 120_000,
    });
    return { ok: true, out: r.stderr };
  } catch (e) {
    const err = e as { stderr?: string; code?: unknown };
    if (typeof err.code !== "number") throw e;
    return { ok: false, out: (err.stderr ?? "").trim().split("\n").pop() ?? "" };
  }
}

/** The cases both legacy tests share: the good image under right/wrong identity and issuer. */
export function identityCases(good: PushedImage, subject: string, issuer: string): AgreementCase[] {
  return [
    { name: "pass", image: good, identity: subject, issuer, expect: "pass" },
    { name: "wrong identity", image: good, identity: `${subject}x`, issuer, expect: "fail" },
    {
      name: "wrong issuer",
      image: good,
      identity: subject,
      issuer: "https://accounts.example.com",
      expect: "fail",
    },
  ];
}

/**
 * Runs every case through cosign and through ours; prints the table and returns the
 * problems: cosign not answering as the case expects, or ours disagreeing with cosign.
 */
export async function agreement(
  cases: AgreementCase[],
  cosign: (c: AgreementCase) => Promise<{ ok: boolean; out: string }>,
  ours: (c: AgreementCase) => Promise<{ ok: boolean; why: string }>,
): Promise<string[]> {
  const rows: string[] = [];
  const problems: string[] = [];
  const v = (ok: boolean) => (ok ? "pass" : "fail");
  for (const c of cases) {
    const cli = await cosign(c);
    const mine = await ours(c);
    rows.push(
      `${c.name.padEnd(32)} ${v(cli.ok).padEnd(7)} ${v(mine.ok).padEnd(6)} ${mine.why.slice(0, 110)} || cosign: ${cli.out.slice(0, 160)}`,
    );
    if (v(cli.ok) !== c.expect)
      problems.push(`${c.name}: cosign=${v(cli.ok)}, expected ${c.expect}: ${cli.out}`);
    if (cli.ok !== mine.ok) problems.push(`${c.name}: ours=${v(mine.ok)} cosign=${v(cli.ok)} (${mine.why})`);
  }
  console.log(
    [`${"case".padEnd(32)} ${"cosign".padEnd(7)} ${"ours".padEnd(6)} our reason || cosign`, ...rows].join(
      "\n",
    ),
  );
  return problems;
}
