// `tollgate doctor` checks of the agent's key management providers (from /v1/status):
// a provider that cannot serve its material, or serves it stale, and which ones are fine.
import type { AgentStatus } from "../agent-api/types.js";
import type { Add } from "./doctor-finding.js";

export function checkKeyProviders(status: AgentStatus, add: Add): void {
  const list = Array.isArray(status.keyProviders) ? status.keyProviders : [];
  const vaults = list.filter((k) => k.type === "azurekeyvault");
  for (const k of vaults) {
    if (!k.ready)
      add({
        id: "keys.not-ready",
        check: "keys",
        severity: "error",
        message: `key provider ${k.provider} is not ready: ${k.error ?? "no material read yet"}`,
        fix: "check the vault's network path, keyManagement.azure (identity) and that the identity may get the certificates and keys (docs/keys.md)",
      });
    else if (k.stale)
      add({
        id: "keys.stale",
        check: "keys",
        severity: "warning",
        message: `key provider ${k.provider} serves its last good material: refresh failed${k.errorAt ? ` at ${k.errorAt}` : ""}: ${k.error ?? "?"}`,
      });
  }
  const fine = vaults.filter((k) => k.ready && !k.stale);
  if (fine.length > 0)
    add({
      id: "keys.ok",
      check: "keys",
      severity: "ok",
      message: `key providers: ${fine.map((k) => `${k.provider} (${k.objects.length} object(s), refreshed ${k.lastRefresh ?? "?"})`).join(", ")}`,
    });
}
