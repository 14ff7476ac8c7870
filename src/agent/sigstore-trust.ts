// The agent's side of Sigstore trusted roots from TUF: which sources the policies in force
// name (loaded at start and on every policy change, then refreshed in the background),
// metrics and logs of each refresh. The roots themselves live in engine/sigstore-trust.
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { type TufSource, type TufTrustedRoots, type TufTrustedRootsOptions, tufSourcesOf } from "../engine/index.js";
import type { CompiledPolicy, PolicySource } from "../policy-source/types.js";

type RefreshEvent = Parameters<NonNullable<TufTrustedRootsOptions["onRefresh"]>>[0];

export class TrustedRootWatch {
  private roots: TufTrustedRoots | undefined;
  private readonly refreshes: Counter<"mirror" | "result">;

  constructor(
    registry: Registry,
    private readonly log: Logger,
  ) {
    this.refreshes = new Counter({
      name: "tollgate_sigstore_tuf_refreshes_total",
      help: "TUF refreshes of Sigstore trusted roots, by mirror and result (ok|changed|failed).",
      labelNames: ["mirror", "result"] as const,
      registers: [registry],
    });
    const perSource = (
      name: string,
      help: string,
      value: (s: ReturnType<TufTrustedRoots["status"]>[0]) => number | undefined,
    ) => {
      const g: Gauge<"mirror"> = new Gauge({
        name,
        help,
        labelNames: ["mirror"] as const,
        registers: [registry],
        collect: () => {
          g.reset();
          for (const s of this.roots?.status() ?? []) {
            const v = value(s);
            if (v !== undefined) g.set({ mirror: s.mirror }, v);
          }
        },
      });
    };
    perSource(
      "tollgate_sigstore_trusted_root_available",
      "1 while a verified Sigstore trusted root from this TUF mirror is held (keyless verification can run).",
      (s) => (s.state === "unavailable" ? 0 : 1),
    );
    perSource(
      "tollgate_sigstore_trusted_root_stale",
      "1 when the held trusted root could not be confirmed by the mirror (last refresh failed or its metadata expired).",
      (s) => (s.state === "fresh" ? 0 : 1),
    );
    perSource(
      "tollgate_sigstore_trusted_root_fetched_timestamp_seconds",
      "When the mirror last confirmed the held trusted root (Unix seconds).",
      (s) => (s.fetchedAt ? Date.parse(s.fetchedAt) / 1000 : undefined),
    );
    perSource(
      "tollgate_sigstore_trusted_root_expiry_timestamp_seconds",
      "Earliest expiry of the TUF metadata that vouched for the held trusted root (Unix seconds).",
      (s) => (s.expires ? Date.parse(s.expires) / 1000 : undefined),
    );
  }

  /** For createAgentEngine's onTrustRefresh. */
  readonly onRefresh = (ev: RefreshEvent): void => {
    const mirror = ev.source.mirror;
    this.refreshes.inc({ mirror, result: !ev.ok ? "failed" : ev.changed ? "changed" : "ok" });
    if (!ev.ok)
      this.log.warn(
        { mirror, err: ev.error },
        "Sigstore trusted root refresh failed; the last good root stays in use",
      );
    else if (ev.changed) this.log.info({ mirror }, "Sigstore trusted root updated from TUF");
  };

  /** Follows the policies in force: loads the roots they name, refreshes them on their interval. */
  watch(roots: TufTrustedRoots, source: PolicySource<CompiledPolicy>): () => void {
    this.roots = roots;
    const sync = () => {
      const byId = new Map<string, TufSource>();
      for (const p of source.policies()) for (const s of tufSourcesOf(p)) byId.set(s.id, s);
      roots.retain(byId.values());
      void roots.track(byId.values());
    };
    sync();
    const off = source.onChange(sync);
    roots.start();
    return () => {
      off();
      roots.stop();
    };
  }
}
