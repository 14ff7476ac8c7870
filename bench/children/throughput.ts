// Verification throughput on one core (the parent pins us with taskset): the real engine
// (createEngineCore with the real Notary Project and cosign verifiers) over signature
// artifacts fetched once from the loopback registry and then served from memory, so the
// loop measures the crypto + policy path: envelope parsing, certificate chain and trust
// policy, signature verification, payload/digest checks, the engine's combine/decide.
// The verdict cache is cleared before every verification; trust material stays compiled.
// Baselines: one raw node:crypto signature verification of the same algorithm.
import { constants, createSign, generateKeyPairSync, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { verifyCosign } from "../../src/engine/cosign/index.js";
import { compilePolicy, createEngineCore } from "../../src/engine/index.js";
import { verifyNotation } from "../../src/engine/notation/index.js";
import { createRegistryClient, discoverSignatures } from "../../src/engine/registry/index.js";
import type { ArtifactKind, ArtifactSource, Descriptor } from "../../src/engine/types.js";
import { summarize } from "../lib/stats.js";

interface Input {
  seconds: number;
  cases: Array<{ label: string; reference: string; digest: string; policy: unknown; kinds: ArtifactKind[] }>;
}

const input = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as Input;

async function memorySource(src: ArtifactSource): Promise<ArtifactSource> {
  const blobs = new Map<string, Uint8Array>();
  const fetchBlob = async (d: Descriptor) => {
    let b = blobs.get(d.digest);
    if (!b) {
      b = await src.fetchBlob(d);
      blobs.set(d.digest, b);
    }
    return b;
  };
  return { ...src, fetchBlob };
}

async function loop(seconds: number, fn: () => Promise<void>) {
  const warmEnd = performance.now() + 1000;
  while (performance.now() < warmEnd) await fn();
  const lat: number[] = [];
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    const s = performance.now();
    await fn();
    lat.push(performance.now() - s);
  }
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const cpuMs = (c.user + c.system) / 1000;
  return {
    n: lat.length,
    ms,
    cpuMs,
    perSecond: (lat.length * 1000) / ms,
    perCpuSecond: (lat.length * 1000) / cpuMs,
    latency: summarize(lat),
  };
}

function rawBaseline(kind: "rsa-pss" | "ecdsa") {
  const data = Buffer.alloc(1024, 7);
  if (kind === "rsa-pss") {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const opts = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
    const sig = createSign("sha256")
      .update(data)
      .sign({ key: privateKey, ...opts });
    return async () => {
      if (!verify("sha256", data, { key: publicKey, ...opts }, sig)) throw new Error("raw verify failed");
    };
  }
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const sig = createSign("sha256").update(data).sign(privateKey);
  return async () => {
    if (!verify("sha256", data, publicKey, sig)) throw new Error("raw verify failed");
  };
}

async function main() {
  const client = createRegistryClient({});
  const results = [];
  for (const c of input.cases) {
    const policy = await compilePolicy(c.policy);
    const subject = { reference: c.reference, digest: c.digest };
    const source = await memorySource(await discoverSignatures(client, subject, { kinds: c.kinds }));
    const engine = createEngineCore({
      discover: async () => source,
      notation: (s, cfg, o) => verifyNotation(s, cfg, o),
      cosign: (s, cfg, o) => verifyCosign(s, cfg, o),
    });
    const first = await engine.verify(subject, policy);
    if (first.outcome !== "verified")
      throw new Error(`${c.label}: not verified: ${first.reasons.join("; ")}`);
    const r = await loop(input.seconds, async () => {
      engine.clearCache();
      const v = await engine.verify(subject, policy);
      if (v.outcome !== "verified" || v.cached)
        throw new Error(`${c.label}: ${v.outcome} cached=${v.cached}`);
    });
    const st = engine.stats();
    results.push({ label: c.label, ...r, verifications: st.verifications, hits: st.hits });
  }
  const raw = {
    "rsa-pss": await loop(Math.min(2, input.seconds), rawBaseline("rsa-pss")),
    ecdsa: await loop(Math.min(2, input.seconds), rawBaseline("ecdsa")),
  };
  process.stdout.write(`${JSON.stringify({ results, raw, registryRequests: client.stats.requests })}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
