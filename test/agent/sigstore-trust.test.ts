// The agent's wiring of Sigstore trusted roots from TUF: the agent configuration's cache
// directory, the roots the policies in force name (loaded and tracked on change), metrics,
// `doctor` findings, and the pull verifier's fallback engine that reads only the agent's
// cache (it must never reach a mirror). The mirror is a local TUF repository on 127.0.0.1.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AgentStatus } from "../../src/agent-api/types.js";
import { ConfigError, defaultConfig, validateConfig } from "../../src/config/agent.js";
import { AgentMetrics } from "../../src/agent/metrics.js";
import { TrustedRootWatch } from "../../src/agent/sigstore-trust.js";
import { createAgentEngine } from "../../src/decision/wiring.js";
import { checkSigstoreTrust } from "../../src/cli/doctor-sigstore.js";
import { type CompiledPolicy, compilePolicy } from "../../src/engine/policy/index.js";
import { tufSourcesOf } from "../../src/engine/sigstore-trust/resolve.js";
import type { PolicySource } from "../../src/policy-source/types.js";
import { selfSignedCert } from "../engine/policy/material.js";
import { LocalTufRepo } from "../support/tuf-repo.js";

const TRUSTED_ROOT = {
  mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
  certificateAuthorities: [
    {
      subject: { organization: "acme", commonName: "acme" },
      uri: "https://fulcio.acme.internal",
      certChain: {
        certificates: [
          {
            rawBytes: selfSignedCert("acme-fulcio")
              .replace(/-----[A-Z ]+-----/g, "")
              .replace(/\s+/g, ""),
          },
        ],
      },
      validFor: { start: "2024-01-01T00:00:00Z" },
    },
  ],
  tlogs: [],
  ctlogs: [],
  timestampAuthorities: [],
};

let work: string;
let repo: LocalTufRepo;
beforeEach(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-agent-tuf-"));
  repo = new LocalTufRepo();
  repo.setTrustedRoot(TRUSTED_ROOT);
  await repo.start();
});
afterEach(async () => {
  await repo.stop();
  rmSync(work, { recursive: true, force: true });
});

function agentConfig() {
  return validateConfig({ sigstore: { tufCacheDir: path.join(work, "tuf"), tufFetchTimeoutMs: 2000 } });
}

async function keylessPolicy(name = "keyless"): Promise<CompiledPolicy> {
  return compilePolicy(
    repo.keylessPolicy({ name, identities: [{ issuer: "https://issuer.acme", subject: "ci@acme" }] }),
  );
}

/** The slice of a policy source the watch uses. */
function fakeSource(policies: CompiledPolicy[]) {
  const listeners = new Set<() => void>();
  const src = {
    list: policies,
    policies: () => src.list,
    onChange(cb: () => void) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    change(list: CompiledPolicy[]) {
      src.list = list;
      for (const l of listeners) l();
    },
  };
  return src;
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe("agent configuration: sigstore", () => {
  it("defaults to a root-only directory under /var/lib/tollgate; checks what is given", () => {
    expect(defaultConfig().sigstore).toEqual({
      tufCacheDir: "/var/lib/tollgate/sigstore-tuf",
      tufFetchTimeoutMs: 10_000,
    });
    expect(agentConfig().sigstore.tufCacheDir).toBe(path.join(work, "tuf"));
    const bad = () =>
      validateConfig({ sigstore: { tufCacheDir: "relative", tufFetchTimeoutMs: 5, mirror: "x" } });
    expect(bad).toThrow(ConfigError);
    try {
      bad();
    } catch (e) {
      expect((e as ConfigError).problems).toEqual(
        expect.arrayContaining([
          "sigstore.mirror: unknown key",
          "sigstore.tufFetchTimeoutMs: must be an integer between 100 and 120000",
          "sigstore.tufCacheDir: must be an absolute path",
        ]),
      );
    }
  });
});

describe("agent: trusted roots the policies in force name", () => {
  it("loads them at start and on change, exports metrics, shows them in status/doctor", async () => {
    const metrics = new AgentMetrics();
    const watch = new TrustedRootWatch(metrics.registry, pino({ level: "silent" }));
    const engine = createAgentEngine(agentConfig(), undefined, { onTrustRefresh: watch.onRefresh });
    const source = fakeSource([]);
    const stop = watch.watch(engine.trustedRoots!, source as unknown as PolicySource<CompiledPolicy>);
    try {
      expect(engine.trustedRoots!.status()).toEqual([]);
      const p = await keylessPolicy();
      source.change([p]);
      await until("root fetched", () => engine.trustedRoots!.status()[0]?.state === "fresh");
      const text = await metrics.registry.metrics();
      expect(text).toContain(`tollgate_sigstore_trusted_root_available{mirror="${repo.url}"} 1`);
      expect(text).toContain(`tollgate_sigstore_trusted_root_stale{mirror="${repo.url}"} 0`);
      expect(text).toContain(
        `tollgate_sigstore_tuf_refreshes_total{mirror="${repo.url}",result="changed"} 1`,
      );
      expect(text).toMatch(/tollgate_sigstore_trusted_root_expiry_timestamp_seconds\{mirror="[^"]+"\} \d+/);

      const findings: Array<{ id: string; severity: string; message: string }> = [];
      const status = { sigstoreTrust: engine.trustedRoots!.status() } as AgentStatus;
      checkSigstoreTrust(status, (f) => findings.push(f));
      expect(findings).toMatchObject([{ id: "sigstore.root", severity: "ok" }]);

      // Mirror gone: the next refresh fails, the root stays, and everyone says stale.
      await repo.stop();
      await engine.trustedRoots!.refresh(tufSourcesOf(p)[0]!);
      const after = await metrics.registry.metrics();
      expect(after).toContain(`tollgate_sigstore_trusted_root_stale{mirror="${repo.url}"} 1`);
      expect(after).toContain(`tollgate_sigstore_trusted_root_available{mirror="${repo.url}"} 1`);
      expect(after).toContain(
        `tollgate_sigstore_tuf_refreshes_total{mirror="${repo.url}",result="failed"} 1`,
      );
      const stale: typeof findings = [];
      checkSigstoreTrust({ sigstoreTrust: engine.trustedRoots!.status() } as AgentStatus, (f) =>
        stale.push(f),
      );
      expect(stale).toMatchObject([{ id: "sigstore.root-stale", severity: "warning" }]);
      expect(stale[0]!.message).toContain("last good root");

      // The policy goes away: the source is no longer tracked or reported.
      source.change([]);
      expect(engine.trustedRoots!.status()).toEqual([]);
    } finally {
      stop();
    }
  });
});

describe("pull verifier fallback: trusted roots from the agent's cache only", () => {
  it("reads what the agent cached and never contacts the mirror", async () => {
    const cfg = agentConfig();
    const p = await keylessPolicy();
    const src = tufSourcesOf(p)[0]!;
    const agent = createAgentEngine(cfg);
    const fetched = await agent.trustedRoots!.get(src);

    repo.requests.length = 0;
    const fallback = createAgentEngine(cfg, undefined, { offline: true });
    const got = await fallback.trustedRoots!.get(src);
    expect(got).toMatchObject({ digest: fetched.digest, origin: "cache" });
    expect(repo.requests).toEqual([]);
  });

  it("with no cache: unavailable (the failure policy answers), still no request to the mirror", async () => {
    const p = await keylessPolicy();
    const fallback = createAgentEngine(agentConfig(), undefined, { offline: true });
    const e = await fallback.trustedRoots!.get(tufSourcesOf(p)[0]!).catch((x: Error) => x);
    expect((e as Error).message).toContain("no cached trusted root");
    expect(repo.requests).toEqual([]);
    const findings: Array<{ id: string; severity: string }> = [];
    checkSigstoreTrust({ sigstoreTrust: fallback.trustedRoots!.status() } as AgentStatus, (f) =>
      findings.push(f),
    );
    expect(findings).toMatchObject([{ id: "sigstore.root-unavailable", severity: "error" }]);
  });
});
