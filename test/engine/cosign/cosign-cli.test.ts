// Verdict agreement with the real `cosign verify` (3.1.1, offline, key-pair) on signatures
// the real `cosign sign` wrote into a loopback docker-registry.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyCosign } from "../../../src/engine/cosign/index.js";
import type { SignatureCheck } from "../../../src/engine/types.js";
import { crane, type PushedImage, pushBusyboxImage } from "../../support/images.js";
import { type LocalRegistry, startRegistry } from "../../support/registry.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../../support/signing.js";
import { tools } from "../../support/tools.js";
import { putManifest, registrySource } from "./registry-source.js";

const run = promisify(execFile);

interface Case {
  name: string;
  image: PushedImage;
  key: "right" | "wrong";
  annotations?: Record<string, string>;
  /** cosign needs --experimental-oci11 to look at OCI 1.1 referrers for legacy signatures. */
  oci11?: boolean;
  expectPass: boolean;
}

let reg: LocalRegistry;
let right: CosignKeys;
let wrong: CosignKeys;
const cases: Case[] = [];

function repoName(img: PushedImage): string {
  return img.repo.slice(img.repo.indexOf("/") + 1);
}

async function cliVerify(c: Case): Promise<{ pass: boolean; out: string }> {
  const keys = c.key === "right" ? right : wrong;
  const args = ["verify", "--key", keys.publicKey, "--insecure-ignore-tlog=true", "--allow-http-registry"];
  if (c.oci11) args.push("--experimental-oci11");
  for (const [k, v] of Object.entries(c.annotations ?? {})) args.push("-a", `${k}=${v}`);
  args.push(c.image.pinned);
  const env = {
    PATH: "/usr/bin:/bin",
    HOME: keys.dir,
    DOCKER_CONFIG: `${keys.dir}/.docker`,
    COSIGN_EXPERIMENTAL: c.oci11 ? "1" : "",
  };
  try {
    const r = await run(tools.cosign, args, { env, cwd: keys.dir, timeout: 120_000 });
    return { pass: true, out: r.stderr };
  } catch (e) {
    const err = e as { stderr?: string; code?: unknown };
    if (typeof err.code !== "number") throw e; // the CLI did not run: not a verdict
    return { pass: false, out: (err.stderr ?? "").trim().split("\n").pop() ?? "" };
  }
}

async function ourVerify(c: Case): Promise<{ pass: boolean; checks: SignatureCheck[] }> {
  const keys = c.key === "right" ? right : wrong;
  const source = await registrySource(reg.url, reg.host, repoName(c.image), c.image.digest);
  const checks = await verifyCosign(
    source,
    { keys: [{ name: c.key, pem: keys.publicKeyPem }], annotations: c.annotations },
    { verifierName: "cosign-test" },
  );
  return { pass: checks.some((x) => x.result === "passed"), checks };
}

beforeAll(async () => {
  reg = await startRegistry();
  [right, wrong] = await Promise.all([cosignGenerateKeyPair(), cosignGenerateKeyPair()]);
  const h = reg.host;
  const bundle = pushBusyboxImage(h, "cosign/bundle", "v1");
  await cosignSign({ ref: bundle.pinned, keyDir: right });
  const bundleAnn = pushBusyboxImage(h, "cosign/bundle-ann", "v1");
  await cosignSign({ ref: bundleAnn.pinned, keyDir: right, annotations: { team: "blue" } });
  const legacy = pushBusyboxImage(h, "cosign/legacy", "v1");
  await cosignSign({ ref: legacy.pinned, keyDir: right, format: "legacy", annotations: { team: "blue" } });
  const legacyRef = pushBusyboxImage(h, "cosign/legacy-ref", "v1");
  await cosignSign({ ref: legacyRef.pinned, keyDir: right, format: "legacy-referrers" });
  const unsigned = pushBusyboxImage(h, "cosign/unsigned", "v1");

  // Signatures moved to another image: same repository, different content.
  const src = pushBusyboxImage(h, "cosign/forge", "src", { marker: "source" });
  const stolenBundle = pushBusyboxImage(h, "cosign/forge", "stolen-bundle", { marker: "bundle-victim" });
  const stolenLegacy = pushBusyboxImage(h, "cosign/forge", "stolen-legacy", { marker: "legacy-victim" });
  await cosignSign({ ref: src.pinned, keyDir: right });
  await cosignSign({ ref: src.pinned, keyDir: right, format: "legacy" });
  const srcTag = src.digest.replace(":", "-");
  const index = crane(["manifest", "--insecure", `${src.repo}:${srcTag}`]);
  await putManifest(
    reg.url,
    "cosign/forge",
    stolenBundle.digest.replace(":", "-"),
    JSON.parse(index),
    "application/vnd.oci.image.index.v1+json",
  );
  crane([
    "copy",
    "--insecure",
    `${src.repo}:${srcTag}.sig`,
    `${src.repo}:${stolenLegacy.digest.replace(":", "-")}.sig`,
  ]);

  cases.push(
    { name: "bundle, right key", image: bundle, key: "right", expectPass: true },
    { name: "bundle, wrong key", image: bundle, key: "wrong", expectPass: false },
    {
      name: "bundle -a team=blue, require team=blue",
      image: bundleAnn,
      key: "right",
      annotations: { team: "blue" },
      expectPass: true,
    },
    {
      name: "bundle -a team=blue, require team=red",
      image: bundleAnn,
      key: "right",
      annotations: { team: "red" },
      expectPass: false,
    },
    { name: "legacy .sig tag, right key", image: legacy, key: "right", expectPass: true },
    { name: "legacy .sig tag, wrong key", image: legacy, key: "wrong", expectPass: false },
    {
      name: "legacy -a team=blue, require team=blue",
      image: legacy,
      key: "right",
      annotations: { team: "blue" },
      expectPass: true,
    },
    {
      name: "legacy -a team=blue, require team=red",
      image: legacy,
      key: "right",
      annotations: { team: "red" },
      expectPass: false,
    },
    { name: "legacy referrer, right key", image: legacyRef, key: "right", oci11: true, expectPass: true },
    { name: "legacy referrer, wrong key", image: legacyRef, key: "wrong", oci11: true, expectPass: false },
    { name: "unsigned image", image: unsigned, key: "right", expectPass: false },
    { name: "bundle copied to other image", image: stolenBundle, key: "right", expectPass: false },
    { name: "legacy .sig copied to other image", image: stolenLegacy, key: "right", expectPass: false },
    { name: "source of the copies, right key", image: src, key: "right", expectPass: true },
  );
}, 300_000);

afterAll(async () => {
  await reg?.stop();
});

describe("cosign key-pair verification agrees with cosign verify 3.1.1", () => {
  it("gives the CLI's verdict on every case", async () => {
    const rows: Array<{ case: string; cli: string; ours: string; reason: string }> = [];
    const disagreements: string[] = [];
    for (const c of cases) {
      const [cli, ours] = [await cliVerify(c), await ourVerify(c)];
      const decisive =
        ours.checks.find((x) => x.result === (ours.pass ? "passed" : "failed")) ?? ours.checks[0];
      rows.push({
        case: c.name,
        cli: cli.pass ? "pass" : "fail",
        ours: ours.pass ? "pass" : "fail",
        reason: `${decisive?.check}: ${decisive?.reason}`,
      });
      if (cli.pass !== ours.pass)
        disagreements.push(`${c.name}: cli=${cli.pass} ours=${ours.pass} (${cli.out})`);
      if (cli.pass !== c.expectPass)
        disagreements.push(`${c.name}: cli=${cli.pass}, fixture expected ${c.expectPass} (${cli.out})`);
    }
    console.log(
      [
        "case | cli | ours | our reason",
        ...rows.map((r) => `${r.case} | ${r.cli} | ${r.ours} | ${r.reason}`),
      ].join("\n"),
    );
    expect(disagreements).toEqual([]);
  }, 300_000);

  it("names the decisive check for each rejection", async () => {
    const reasonOf = async (name: string) => {
      const c = cases.find((x) => x.name === name);
      if (!c) throw new Error(name);
      return (await ourVerify(c)).checks;
    };
    expect((await reasonOf("bundle, wrong key")).map((c) => c.check)).toEqual(["authenticity"]);
    expect((await reasonOf("legacy .sig tag, wrong key")).map((c) => c.check)).toEqual(["authenticity"]);
    expect(await reasonOf("unsigned image")).toMatchObject([
      { result: "failed", check: "presence", reason: "no cosign signature found" },
    ]);
    expect((await reasonOf("bundle copied to other image")).map((c) => c.check)).toEqual(["payloadDigest"]);
    expect((await reasonOf("legacy .sig copied to other image")).map((c) => c.check)).toEqual([
      "payloadDigest",
    ]);
    const src = await reasonOf("source of the copies, right key");
    // One bundle referrer plus one simple-signing layer under the .sig tag, both valid.
    expect(src.map((c) => [c.details?.format, c.result])).toEqual([
      ["bundle-v0.3", "passed"],
      ["simplesigning", "passed"],
    ]);
    expect(src[0]?.signer).toBe("right");
  }, 120_000);

  it("checks critical.identity.docker-reference when the policy asks", async () => {
    const legacy = cases.find((c) => c.name === "legacy .sig tag, right key");
    if (!legacy) throw new Error("fixture");
    const source = await registrySource(reg.url, reg.host, repoName(legacy.image), legacy.image.digest);
    const pem = right.publicKeyPem;
    const ok = await verifyCosign(
      source,
      { keys: [{ pem }], requireDockerReference: true },
      { verifierName: "v" },
    );
    expect(ok.map((c) => c.result)).toEqual(["passed"]);
    const moved = {
      ...source,
      subject: { ...source.subject, reference: `${reg.host}/other/repo@${legacy.image.digest}` },
    };
    const bad = await verifyCosign(
      moved,
      { keys: [{ pem }], requireDockerReference: true },
      { verifierName: "v" },
    );
    expect(bad).toMatchObject([{ result: "failed", check: "dockerReference" }]);
  }, 120_000);
});
