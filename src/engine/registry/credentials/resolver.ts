// Chooses the credential provider for a registry host (first matching rule wins; a rule
// without hosts serves every host no earlier rule took) and owns the caching every provider
// shares: answers reused for as long and as widely as the provider said (image / registry /
// global), one call in flight per (provider, image) however many verifications wait for it,
// and failures remembered for a short while so a broken plugin is not run for every request.
import { EngineError, isEngineError, toEngineError } from "../../errors.js";
import type { Credential } from "../dockerconfig.js";
import { abortable } from "../../abortable.js";
import { type HostPattern, hostMatches, orderingProblems } from "./host-pattern.js";
import type { CredentialAnswer, CredentialProvider, CredentialRequest } from "./types.js";

export interface ProviderRule {
  provider: CredentialProvider;
  /** Undefined = every host (must be the last rule). */
  hosts: HostPattern[] | undefined;
  /** How long a failure is remembered (ms). */
  negativeTtlMs: number;
}

export interface ProviderStatus {
  name: string;
  type: string;
  hosts: string[] | "*";
  calls: number;
  cacheHits: number;
  failures: number;
  /** The last failure's code and sentence (never a credential). */
  lastError?: { code: string; message: string; at: string };
}

interface Entry {
  answer: CredentialAnswer;
  expiresAt: number;
}

const MAX_ENTRIES = 4096;

export class CredentialResolver {
  private readonly cache = new Map<string, Entry>();
  private readonly failures = new Map<string, { error: EngineError; until: number }>();
  private readonly inflight = new Map<string, Promise<CredentialAnswer>>();
  private readonly stats = new Map<string, ProviderStatus>();

  constructor(
    private readonly rules: readonly ProviderRule[],
    private readonly now: () => number = Date.now,
  ) {
    const problems = orderingProblems(
      rules.flatMap((r) =>
        (r.hosts ?? []).map((pattern) => ({ owner: `provider ${r.provider.name}`, pattern })),
      ),
    );
    const catchAll = rules.findIndex((r) => r.hosts === undefined);
    if (catchAll >= 0 && catchAll !== rules.length - 1)
      problems.push(
        `provider ${rules[catchAll]!.provider.name} has no hosts (serves every host) and must be the last one`,
      );
    const names = new Set<string>();
    for (const r of rules) {
      if (names.has(r.provider.name)) problems.push(`provider name ${r.provider.name} is used twice`);
      names.add(r.provider.name);
      this.stats.set(r.provider.name, {
        name: r.provider.name,
        type: r.provider.type,
        hosts: r.hosts ? r.hosts.map((h) => h.text) : "*",
        calls: 0,
        cacheHits: 0,
        failures: 0,
      });
    }
    if (problems.length > 0)
      throw new EngineError("INVALID_CONFIG", `registry credential providers: ${problems.join("; ")}`, {
        details: { problems },
      });
  }

  /** The rule that serves a host, if any. */
  ruleFor(host: string): ProviderRule | undefined {
    return this.rules.find((r) => r.hosts === undefined || r.hosts.some((p) => hostMatches(p, host)));
  }

  providers(): CredentialProvider[] {
    return this.rules.map((r) => r.provider);
  }

  status(): ProviderStatus[] {
    return [...this.stats.values()].map((s) => ({
      ...s,
      ...(s.lastError ? { lastError: { ...s.lastError } } : {}),
    }));
  }

  /** The credential for a request; undefined = anonymous. Throws REGISTRY_AUTH on provider failure. */
  async credentialFor(req: CredentialRequest): Promise<Credential | undefined> {
    const rule = this.ruleFor(req.host);
    if (!rule) return undefined;
    const p = rule.provider;
    const st = this.stats.get(p.name)!;
    const t = this.now();
    const keys = [`${p.name}|image|${req.image}`, `${p.name}|registry|${req.host}`, `${p.name}|global`];
    for (const k of keys) {
      const e = this.cache.get(k);
      if (!e) continue;
      if (t < e.expiresAt) {
        st.cacheHits++;
        return e.answer.credential;
      }
      this.cache.delete(k);
    }
    const failKey = keys[0]!;
    const failed = this.failures.get(failKey);
    if (failed && t < failed.until) {
      st.cacheHits++;
      throw failed.error;
    }
    let pending = this.inflight.get(failKey);
    if (!pending) {
      st.calls++;
      // The provider runs without the caller's signal: other callers share this call, and
      // its own time limit bounds it.
      pending = p.get({ host: req.host, image: req.image }).then(
        (answer) => {
          this.inflight.delete(failKey);
          this.failures.delete(failKey);
          if (answer.ttlMs > 0) {
            const key =
              answer.scope === "image" ? keys[0]! : answer.scope === "registry" ? keys[1]! : keys[2]!;
            if (this.cache.size >= MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value as string);
            this.cache.set(key, { answer, expiresAt: this.now() + answer.ttlMs });
          }
          return answer;
        },
        (e: unknown) => {
          this.inflight.delete(failKey);
          const base = toEngineError(e, "REGISTRY_AUTH");
          const err =
            isEngineError(e) &&
            (e.code === "REGISTRY_AUTH" || e.code === "CANCELLED" || e.code === "INVALID_CONFIG")
              ? e
              : new EngineError("REGISTRY_AUTH", `credential provider ${p.name}: ${base.message}`, {
                  cause: e,
                });
          st.failures++;
          st.lastError = { code: err.code, message: err.message, at: new Date(this.now()).toISOString() };
          if (rule.negativeTtlMs > 0)
            this.failures.set(failKey, { error: err, until: this.now() + rule.negativeTtlMs });
          throw err;
        },
      );
      this.inflight.set(failKey, pending);
    }
    const answer = await abortable(pending, req.signal, "cancelled");
    return answer.credential;
  }
}
