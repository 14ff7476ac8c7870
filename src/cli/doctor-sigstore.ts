// `tollgate doctor`'s Sigstore trusted root check: for each TUF mirror the agent's keyless
// verifiers name, is a verified root held, was it confirmed by the mirror, when does the
// metadata that vouched for it expire, and what was the last refresh error.
import type { AgentStatus } from "../agent-api/types.js";
import type { Add } from "./doctor-finding.js";

export function checkSigstoreTrust(status: AgentStatus, add: Add, now = new Date()): void {
  for (const s of status.sigstoreTrust ?? []) {
    const err = s.lastError ? `: ${s.lastError.message} (at ${s.lastError.at})` : "";
    if (s.state === "unavailable")
      add({
        id: "sigstore.root-unavailable",
        check: "sigstore",
        severity: "error",
        message: `no verified Sigstore trusted root from TUF mirror ${s.mirror}${err}; keyless verifiers using it cannot complete (their failure policy answers)`,
        fix: "let the agent reach the mirror (or name a reachable mirror and its root in the ImagePolicy)",
      });
    else if (s.state === "stale") {
      const expired = s.expires !== undefined && Date.parse(s.expires) <= now.getTime();
      add({
        id: "sigstore.root-stale",
        check: "sigstore",
        severity: "warning",
        message: `Sigstore trusted root from ${s.mirror} is stale (last confirmed ${s.fetchedAt ?? "never"}${expired ? `, TUF metadata expired ${s.expires}` : ""})${err}; verification continues with the last good root (TUF root v${s.rootVersion ?? "?"}, trusted_root ${s.trustedRoot ?? "?"})`,
        fix: "check the agent's network path to the mirror; a rotated root is picked up at the next successful refresh",
      });
    } else
      add({
        id: "sigstore.root",
        check: "sigstore",
        severity: "ok",
        message: `Sigstore trusted root from ${s.mirror}: TUF root v${s.rootVersion}, fetched ${s.fetchedAt}, metadata expires ${s.expires}, next refresh ${s.nextRefreshAt ?? "?"}`,
      });
  }
}
