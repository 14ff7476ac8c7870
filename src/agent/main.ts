// The agent process (one per node): configuration → policy source → engine → local API
// for the pull verifier → metrics/health → NRI plugin (create-time gate + Synchronize
// audit). Stops cleanly on SIGTERM/SIGINT.

import http from "node:http";
import { type Logger, pino } from "pino";
import pkg from "../../package.json";
import type { AgentStatus } from "../agent-api/types.js";
import { errorMessage } from "../base/errors.js";
import { type AgentConfig, ConfigError, loadConfig, parseListen } from "../config/agent.js";
import { CriImages } from "../containerd/cri-images.js";
import { CachedContainerdImages } from "../containerd/image-cache.js";
import { ContainerdImageResolver, ContainerdImages } from "../containerd/images.js";
import { ContainerdRootfs } from "../containerd/rootfs.js";
import { type ClusterVisibility, podDenial, startCluster } from "../decision/cluster-wiring.js";
import type { DecisionSink } from "../decision/decision.js";
import { ExemptImages } from "../decision/exempt.js";
import { createKeyProviders, sourceKeyProvider } from "../decision/key-providers.js";
import { PullDecider } from "../decision/pull.js";
import { pullScopeFor } from "../decision/pull-scope.js";
import {
  type AgentEngine,
  createAgentEngine,
  createPolicySource,
  normalizeName,
} from "../decision/wiring.js";
import type { CompiledPolicy, PolicySource } from "../policy-source/types.js";
import { closeServer, listenTcp, makeHandler, UnixApiListener } from "./api.js";
import { AuditLog } from "./audit.js";
import { TagHistory } from "./binding.js";
import { Gate } from "./gate.js";
import { type LogOutput, stdoutLog } from "./log-output.js";
import { AgentMetrics } from "./metrics.js";
import { NriGate } from "./nri.js";
import { installProcessHandlers } from "./process.js";
import { TrustedRootWatch } from "./sigstore-trust.js";

export const VERSION: string = pkg.version;

export interface AgentHandle {
  config: AgentConfig;
  status(): AgentStatus;
  /** Port of the metrics/health listener (0 when disabled). */
  metricsPort: number;
  engine: AgentEngine;
  metrics: AgentMetrics;
  stop(): Promise<void>;
}

/** What a caller may supply instead of the default (the memory benchmark fills the engine's cache). */
export interface AgentDeps {
  engine?: AgentEngine;
}

/** Starts every component; resolves once the local API is serving (NRI registers in the background). */
export async function startAgent(cfg: AgentConfig, log: Logger, deps: AgentDeps = {}): Promise<AgentHandle> {
  const startedAt = new Date().toISOString();
  const metrics = new AgentMetrics({ defaultMetrics: true });
  metrics.setBuildInfo(VERSION);
  const keys = createKeyProviders(cfg, metrics.registry);
  const source: PolicySource<CompiledPolicy> = await createPolicySource(
    cfg,
    log.child({ component: "policy-source" }),
    { keys },
  );
  keys.register(sourceKeyProvider(source));
  const trust = new TrustedRootWatch(metrics.registry, log.child({ component: "sigstore-trust" }));
  metrics.watchPolicies(() => source.policyOutcomes?.() ?? []);
  // ImagePolicy status (one writer per cluster) and pod Events; kubernetes source only.
  let cluster: ClusterVisibility | undefined;
  const engine =
    deps.engine ??
    createAgentEngine(
      cfg,
      (ev) => {
        if (ev.error) metrics.registryErrors.inc({ code: ev.error });
      },
      { onTrustRefresh: trust.onRefresh },
    );
  metrics.watchLimits(() => engine.limits.stats());
  metrics.watchCredentialProviders(() => engine.credentials.status());
  const images = new ContainerdImages({
    address: cfg.containerd.address,
    namespace: cfg.containerd.namespace,
  });
  // Name → top-level descriptor, invalidated by containerd's image events; bypassed whenever
  // the event stream is not proven live (src/containerd/image-cache.ts).
  const cachedImages = new CachedContainerdImages({
    address: cfg.containerd.address,
    namespace: cfg.containerd.namespace,
    images,
    log: log.child({ component: "image-cache" }),
  });
  // Image IDs (full or short) are resolved by CRI itself, as the create that follows will be.
  const criImages = new CriImages(cfg.containerd.address);
  const audit = new AuditLog(log.child({ component: "audit" }), metrics);
  // Records wait for the next loop turn (audit.ts); a process exit must not drop them.
  const flushAudit = () => audit.flush();
  process.on("exit", flushAudit);
  // Every digest a name was pulled or resolved at feeds the tag-move fallback (binding.ts).
  const tagHistory = new TagHistory(cfg.gate.tagMoveWindowSeconds * 1000, normalizeName);
  const sink: DecisionSink = {
    record(d) {
      if (d.digest && (d.event === "pull" || d.event === "create")) tagHistory.record(d.image, d.digest);
      audit.record(d);
      if (d.event === "create" && !d.allowed && d.container) cluster?.denied(podDenial(d, d.container));
    },
  };
  // containerd's record of each container's rootfs, compared with the judged image.
  const rootfs = new ContainerdRootfs({
    address: cfg.containerd.address,
    namespace: cfg.containerd.namespace,
    snapshotters: cfg.containerd.snapshotters,
    // The parent containerd announced when it prepared the container's snapshot spares a
    // Stat round trip per allowed create; absent, Stat asks (src/containerd/snapshot-events.ts).
    preparedParent: (sn, key) => cachedImages.preparedParent(sn, key),
  });
  metrics.watchBinding(() => rootfs.counts);
  metrics.watchImageCache(() => cachedImages.stats());
  const exemptImages = new ExemptImages(cfg.policy.exemptImages);
  let nri: NriGate<CompiledPolicy> | undefined;

  const gate = new Gate<CompiledPolicy>({
    selector: source,
    engine,
    resolver: new ContainerdImageResolver(cachedImages, criImages),
    exemptImages,
    exemptNamespaces: cfg.policy.exemptNamespaces,
    budgetFraction: cfg.gate.budgetFraction,
    requestTimeoutMs: () => nri?.timeoutMs ?? cfg.gate.defaultRequestTimeoutMs,
    sink,
    metrics,
    binder: rootfs,
    tagHistory,
  });
  const pull = new PullDecider<CompiledPolicy>({
    selector: source,
    engine,
    exemptImages,
    mode: cfg.pullVerifier.mode,
    // Leave the verifier binary time to print the answer before its own timeout.
    timeoutMs: Math.max(100, cfg.pullVerifier.timeoutMs - 500),
    failurePolicy: cfg.pullVerifier.failurePolicy,
    normalize: normalizeName,
    scope: pullScopeFor(cfg.policy, source),
    sink,
  });

  await source.start();
  cluster = await startCluster(cfg, source, log);
  if (cluster) metrics.watchLeadership(cluster.isLeader);
  cachedImages.start();
  const stopTrust = engine.trustedRoots ? trust.watch(engine.trustedRoots, source) : () => {};
  source.onChange(() => {
    const st = source.status();
    log.info(
      {
        policies: st.policies.map((p) => ({ name: p.name, revision: p.revision })),
        rejected: st.rejected.length,
      },
      "policies changed",
    );
  });

  const policyView = (p: CompiledPolicy) => ({
    name: p.name,
    revision: p.revision,
    mode: p.mode,
    failurePolicy: p.failurePolicy,
  });
  const status = (): AgentStatus => {
    const st = source.status();
    const notReady: string[] = [];
    if (!st.ready) notReady.push(`policy source ${st.source} not ready (${st.sync.state})`);
    if (nri && nri.state !== "registered") notReady.push(`NRI plugin ${nri.state}`);
    const keyProviders = keys.status();
    for (const k of keyProviders)
      if (!k.ready && k.type === "azurekeyvault")
        notReady.push(`key provider ${k.provider} not ready: ${k.error ?? "no material yet"}`);
    const def = source.defaultPolicy();
    return {
      version: VERSION,
      startedAt,
      ready: notReady.length === 0,
      notReady,
      nri: {
        enabled: cfg.nri.enabled,
        state: nri ? nri.state : "disabled",
        requestTimeoutMs: nri?.timeoutMs,
        lastSyncAudit: nri?.lastSyncAudit,
      },
      policySource: st,
      defaultPolicy: def ? policyView(def) : undefined,
      policies: source.policies().map(policyView),
      pullVerifier: { mode: cfg.pullVerifier.mode },
      exemptNamespaces: cfg.policy.exemptNamespaces,
      exemptImages: cfg.policy.exemptImages,
      credentialProviders: engine.credentials.status(),
      sigstoreTrust: engine.trustedRoots?.status() ?? [],
      keyProviders,
    };
  };
  const handlers = {
    pullVerdict: (r: Parameters<PullDecider["decide"]>[0]) => pull.decide(r),
    status,
    metrics: async () => ({
      contentType: metrics.registry.contentType,
      body: await metrics.registry.metrics(),
    }),
  };

  const apiListener = new UnixApiListener(makeHandler(handlers, { local: true }), cfg.api.socket, log);
  await apiListener.start();
  log.info({ socket: cfg.api.socket }, "local API listening");

  let metricsServer: http.Server | undefined;
  let metricsPort = 0;
  if (cfg.metrics.listen !== "") {
    const l = parseListen(cfg.metrics.listen)!;
    metricsServer = http.createServer(makeHandler(handlers, { local: false }));
    metricsPort = await listenTcp(metricsServer, l.host, l.port);
    log.info({ listen: `${l.host}:${metricsPort}` }, "metrics and health listening");
  }

  if (cfg.nri.enabled) {
    nri = new NriGate<CompiledPolicy>({ config: cfg, gate, metrics, log });
    metrics.setNriState("connecting");
    // Registration happens in the background and again after every reconnect.
    nri.start().catch((e: unknown) => log.error({ err: errorMessage(e) }, "NRI plugin failed to start"));
  }

  let stopped = false;
  return {
    config: cfg,
    status,
    metricsPort,
    engine,
    metrics,
    async stop() {
      if (stopped) return;
      stopped = true;
      await nri?.stop().catch((e: unknown) => log.warn({ err: errorMessage(e) }, "NRI stop failed"));
      await apiListener.stop();
      if (metricsServer) await closeServer(metricsServer);
      await cluster?.stop().catch(() => {});
      await source.stop().catch(() => {});
      stopTrust();
      keys.stop();
      cachedImages.close();
      images.close();
      criImages.close();
      rootfs.close();
      audit.flush();
      process.off("exit", flushAudit);
    },
  };
}

/** The agent's logger: JSON lines on stdout, written on the main thread (log-output.ts). */
export function agentLogger(cfg: AgentConfig): { log: Logger; output: LogOutput } {
  const output = stdoutLog();
  // `service` names the process; children add `component` (pino does not de-duplicate keys,
  // so the root must not bind `component` itself).
  const log = pino({ level: cfg.log.level, base: { service: "tollgate-agent" } }, output.stream);
  return { log, output };
}

/** How long a stopping agent waits for log lines its stdout reader has not taken yet. */
const LOG_DRAIN_MS = 2_000;

/** `tollgate agent [flags]`: returns the process exit code once stopped. */
export async function agentMain(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let cfg: AgentConfig;
  try {
    cfg = await loadConfig({ argv, env });
  } catch (e) {
    process.stderr.write(`tollgate agent: ${errorMessage(e)}\n`);
    return 2;
  }
  const { log, output } = agentLogger(cfg);
  // Before anything starts: an escaped error is logged and the agent keeps serving
  // (a crash would open NRI's fail-open window). Counted once metrics exist.
  let countError: ((kind: "unhandledRejection" | "uncaughtException") => void) | undefined;
  installProcessHandlers(log.child({ component: "process" }), (k) => countError?.(k));
  let agent: AgentHandle;
  try {
    agent = await startAgent(cfg, log);
  } catch (e) {
    log.fatal({ err: errorMessage(e) }, "agent failed to start");
    await output.drain(LOG_DRAIN_MS);
    return 1;
  }
  countError = (kind) => agent.metrics.processErrors.inc({ kind });
  log.info({ version: VERSION, node: process.version, config: cfg.file ?? "defaults" }, "agent started");
  const code = await new Promise<number>((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => {
      log.info({ signal: sig }, "shutting down");
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      const force = setTimeout(() => resolve(1), 10_000);
      force.unref();
      agent.stop().then(
        () => {
          clearTimeout(force);
          log.info({}, "stopped");
          resolve(0);
        },
        () => resolve(1),
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  // The caller exits the process next: lines still queued for a slow stdout reader go first.
  await output.drain(LOG_DRAIN_MS);
  return code;
}
