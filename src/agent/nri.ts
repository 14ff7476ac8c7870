// NRI adapter: subscribes to CreateContainer, turns the gate's denials into
// PERMISSION_DENIED (the only way to block: a timeout or a dropped connection makes
// containerd create the container without us), and runs the Synchronize audit in the
// background after each (re)connection.
import { errorMessage } from "../base/errors.js";
import type { Logger } from "pino";
import type { Container, PodSandbox } from "../gen/nri.js";
import type { ConfigureInfo, PluginState } from "../nri-plugin/api.js";
import { NriPlugin } from "../nri-plugin/plugin.js";
import { Code, TtrpcStatusError } from "../nri-plugin/ttrpc/status.js";
import type { SyncAuditSummary } from "../agent-api/types.js";
import type { AgentConfig } from "../config/agent.js";
import { criStopContainer, Evictor, type StopContainer } from "./evict.js";
import type { Gate } from "./gate.js";
import type { AgentMetrics } from "./metrics.js";
import type { PolicyRef } from "../decision/ports.js";
import { SeenContainers } from "./seen-containers.js";
import { runSyncAudit } from "./sync-audit.js";

export interface NriGateOptions<P extends PolicyRef> {
  config: AgentConfig;
  gate: Gate<P>;
  metrics: AgentMetrics;
  log: Logger;
  /** How evictOnSync stops a container (default: CRI StopContainer on containerd's socket). */
  stopContainer?: StopContainer;
}

export class NriGate<P extends PolicyRef = PolicyRef> {
  readonly plugin: NriPlugin;
  state: PluginState | "disabled" = "idle";
  lastSyncAudit: SyncAuditSummary | undefined;
  private audit: Promise<void> | undefined;
  private requestTimeoutMs: number;
  private readonly evictor: Evictor;
  private readonly seen: SeenContainers;

  constructor(private readonly o: NriGateOptions<P>) {
    this.requestTimeoutMs = o.config.gate.defaultRequestTimeoutMs;
    this.seen = new SeenContainers(o.config.nri.statePath, o.log.child({ component: "nri" }));
    this.seen.load();
    this.evictor = new Evictor({
      stop: o.stopContainer ?? criStopContainer(o.config.containerd.address),
      gracePeriodSeconds: o.config.nri.evictGracePeriodSeconds,
      exemptNamespaces: o.config.policy.exemptNamespaces,
      log: o.log.child({ component: "audit" }),
      metrics: o.metrics,
    });
    const log = o.log.child({ component: "nri" });
    this.plugin = new NriPlugin(
      {
        name: o.config.nri.pluginName,
        index: o.config.nri.pluginIndex,
        socketPath: o.config.nri.socket,
        events: ["CreateContainer"],
        logger: log,
        ...(o.config.nri.preLaunched ? {} : { env: {} }),
      },
      {
        configure: (info: ConfigureInfo) => {
          if (info.requestTimeoutMs > 0) this.requestTimeoutMs = info.requestTimeoutMs;
          log.info(
            {
              runtime: `${info.runtimeName} ${info.runtimeVersion}`,
              requestTimeoutMs: info.requestTimeoutMs,
            },
            "configured by the runtime",
          );
        },
        synchronize: (pods: PodSandbox[], containers: Container[]) => {
          // Answer now; audit in the background (the audit may need registry round trips).
          // Decide "created while away" before recording this Synchronize's containers.
          const baseline = this.seen.hasBaseline;
          const gap = new Set(containers.filter((c) => baseline && !this.seen.has(c.id)).map((c) => c.id));
          this.seen.replace(containers.map((c) => c.id));
          this.audit = this.syncAudit(pods, containers, gap);
          return [];
        },
        createContainer: async (pod, container, ctx) => {
          const d = await o.gate.createContainer(pod, container, { deadline: ctx.deadline });
          if (!d.allowed) throw new TtrpcStatusError(Code.PERMISSION_DENIED, d.message);
          this.seen.add(container.id);
          return {};
        },
        onStateChange: (state, detail) => {
          this.state = state;
          o.metrics.setNriState(state);
          if (state === "registered") log.info({}, "registered with containerd");
          else if (state === "disconnected") log.warn({ detail }, "disconnected from containerd");
        },
      },
    );
  }

  /** Request timeout announced in Configure (or the configured default until then). */
  get timeoutMs(): number {
    return this.requestTimeoutMs;
  }

  start(): Promise<void> {
    return this.plugin.start();
  }

  async stop(): Promise<void> {
    await this.plugin.stop();
    this.seen.flush();
    await this.audit?.catch(() => {});
  }

  private async syncAudit(pods: PodSandbox[], containers: Container[], gap: Set<string>): Promise<void> {
    try {
      this.lastSyncAudit = await runSyncAudit(pods, containers, {
        evaluate: (input) => this.o.gate.evaluate(input),
        evictOnSync: this.o.config.nri.evictOnSync,
        createdInGap: (id) => gap.has(id),
        evict: async (ev) => {
          // NRI v0.8.0 (containerd 2.1) drops eviction requests: stop through CRI (evict.ts).
          await this.evictor.evict(ev);
        },
        metrics: this.o.metrics,
        log: this.o.log.child({ component: "sync-audit" }),
      });
    } catch (e) {
      this.o.log.error({ err: errorMessage(e) }, "synchronize audit failed");
    }
  }
}
