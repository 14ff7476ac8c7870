// `tollgate doctor`'s registry credential checks: the providers build (host patterns in a
// sensible order, kubelet's CredentialProviderConfig parses), every plugin and credential
// helper they name is there and executable, and — for `--image` — which provider would
// serve that image (and, for kubelet plugins, which plugins its matchImages select).
import { errorMessage } from "../base/errors.js";
import type { AgentConfig } from "../config/agent.js";
import { isEngineError } from "../engine/errors.js";
import { normalizeReference } from "../engine/reference.js";
import {
  buildCredentialResolver,
  type CredentialResolver,
  KubeletProvider,
} from "../engine/registry/credentials/index.js";

interface Finding {
  id: string;
  check: string;
  severity: "ok" | "info" | "warning" | "error";
  message: string;
  fix?: string;
}

export function checkCredentials(
  cfg: AgentConfig | undefined,
  image: string | undefined,
  add: (f: Finding) => void,
): void {
  if (!cfg) {
    if (image !== undefined)
      add({
        id: "credentials.no-config",
        check: "credentials",
        severity: "warning",
        message: "--image needs the agent configuration to tell which credential provider serves it",
        fix: "pass --config FILE",
      });
    return;
  }
  let resolver: CredentialResolver;
  try {
    resolver = buildCredentialResolver(cfg.registry.credentialProviders, cfg.registry.dockerConfigs);
  } catch (e) {
    add({
      id: "credentials.config",
      check: "credentials",
      severity: "error",
      message: `registry credential providers cannot start: ${isEngineError(e) ? e.message : String(e)}`,
      fix: "fix registry.credentialProviders in the agent configuration (or the files it names)",
    });
    return;
  }
  let problems = 0;
  for (const p of resolver.providers()) {
    for (const why of p.check?.() ?? []) {
      problems++;
      add({
        id: "credentials.plugin",
        check: "credentials",
        severity: "error",
        message: `credential provider ${p.name}: ${why}`,
        fix:
          p.type === "azure"
            ? "give the agent's pod an Azure identity (docs/credentials.md: workload identity, managed identity or a service principal)"
            : "install the plugin/helper where the configuration says, executable by the agent's user",
      });
    }
  }
  if (problems === 0 && resolver.providers().length > 0)
    add({
      id: "credentials.ok",
      check: "credentials",
      severity: "ok",
      message: `registry credential providers: ${resolver
        .status()
        .map((s) => `${s.name} (${s.type}; ${s.hosts === "*" ? "every other host" : s.hosts.join(", ")})`)
        .join("; ")}`,
    });
  if (image === undefined) return;
  let ref: string;
  try {
    ref = normalizeReference(image);
  } catch (e) {
    add({
      id: "credentials.image",
      check: "credentials",
      severity: "error",
      message: `--image: ${errorMessage(e)}`,
    });
    return;
  }
  const host = ref.slice(0, ref.indexOf("/"));
  const repo = ref.replace(/[@:][^/]*$/, "").replace(/@.*$/, "");
  const rule = resolver.ruleFor(host);
  let message = rule
    ? `${image} (registry ${host}) is served by credential provider ${rule.provider.name} (${rule.provider.type})`
    : `${image} (registry ${host}) is served by no credential provider: requests are anonymous`;
  if (rule?.provider instanceof KubeletProvider) {
    const plugins = rule.provider.pluginsFor(repo).map((p) => p.name);
    message += plugins.length
      ? `; kubelet plugins whose matchImages select it: ${plugins.join(", ")}`
      : "; no kubelet plugin's matchImages select it (anonymous)";
  }
  add({ id: "credentials.image", check: "credentials", severity: "info", message });
}
