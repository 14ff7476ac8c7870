// The agent's key management providers: built from `keyManagement` in the configuration,
// handed to the policy source (which recompiles policies when their material changes), shown
// in /v1/status and as metrics:
//   tollgate_key_provider_ready{provider,type}          1 when every object has a good copy
//   tollgate_key_provider_stale{provider,type}          1 while a failed refresh leaves old material
//   tollgate_key_provider_refreshes_total{provider,result}  refresh attempts per object (ok|error)
//
// Here, with the policy source's wiring, because the CLI (`tollgate verify`) reads vaults with
// the same configuration as the agent.
import { Counter, Gauge, type Registry } from "prom-client";
import type { AgentConfig } from "../config/agent.js";
import { KeyProviders, type KeyProviderStatus } from "../engine/index.js";
import type { CompiledPolicy, PolicySource } from "../policy-source/types.js";

export function createKeyProviders(cfg: AgentConfig, registry?: Registry): KeyProviders {
  const a = cfg.keyManagement.azure;
  let refreshes: Counter<"provider" | "result"> | undefined;
  const kp = new KeyProviders({
    azure: {
      credential: a.credential,
      maxStaleSeconds: a.maxStaleSeconds,
      disableChallengeResourceVerification: a.disableChallengeResourceVerification,
    },
    events: { refreshed: (provider, ok) => refreshes?.inc({ provider, result: ok ? "ok" : "error" }) },
  });
  if (registry) {
    refreshes = new Counter({
      name: "tollgate_key_provider_refreshes_total",
      help: "Key management provider reads of one object (first read or refresh), by result (ok|error).",
      labelNames: ["provider", "result"] as const,
      registers: [registry],
    });
    const gauge = (name: string, help: string, pick: (s: KeyProviderStatus) => boolean) => {
      const g: Gauge<"provider" | "type"> = new Gauge({
        name,
        help,
        labelNames: ["provider", "type"] as const,
        registers: [registry],
        collect: () => {
          g.reset();
          for (const s of kp.status()) g.set({ provider: s.provider, type: s.type }, pick(s) ? 1 : 0);
        },
      });
    };
    gauge(
      "tollgate_key_provider_ready",
      "1 when the key management provider serves every object it was asked for.",
      (s) => s.ready,
    );
    gauge(
      "tollgate_key_provider_stale",
      "1 while the provider serves last good material because refreshes fail.",
      (s) => s.stale,
    );
  }
  return kp;
}

/** The policy source's own trust material (Secret/ConfigMap references) as a status-only provider. */
export function sourceKeyProvider(source: PolicySource<CompiledPolicy>): { status(): KeyProviderStatus } {
  const k8s = source as unknown as Partial<{
    watchedTrustObjects(): string[];
    informers(): { path: string; synced: boolean }[];
  }>;
  return {
    status: () => {
      const st = source.status();
      const objects = k8s.watchedTrustObjects?.() ?? [];
      const trustSynced = (k8s.informers?.() ?? [])
        .filter((i) => /\/(secrets|configmaps)$/.test(i.path))
        .every((i) => i.synced);
      return {
        provider: st.source,
        type: st.source === "kubernetes" ? "kubernetes" : "files",
        ready: st.ready && trustSynced,
        stale: st.sync.state === "reconnecting",
        objects,
        ...(st.sync.lastError
          ? { error: st.sync.lastError, ...(st.sync.lastErrorAt ? { errorAt: st.sync.lastErrorAt } : {}) }
          : {}),
      };
    },
  };
}
