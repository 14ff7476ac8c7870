// doctor's key management provider checks, from the agent's /v1/status.
import { describe, expect, it } from "vitest";
import type { AgentStatus } from "../../src/agent-api/types.js";
import type { Finding } from "../../src/cli/doctor.js";
import { checkKeyProviders } from "../../src/cli/doctor-keys.js";

const base = { type: "azurekeyvault" as const, objects: ["key cosign (latest)@ab"], stale: false };

function run(keyProviders: AgentStatus["keyProviders"]): Finding[] {
  const out: Finding[] = [];
  checkKeyProviders({ keyProviders } as AgentStatus, (f) => out.push(f));
  return out;
}

describe("doctor: key providers", () => {
  it("not ready is an error, stale a warning, the rest listed as ok; inline/kubernetes are not judged", () => {
    const f = run([
      { provider: "inline", type: "inline", ready: true, stale: false, objects: [] },
      {
        ...base,
        provider: "azurekeyvault:a.vault.azure.net",
        ready: false,
        error: "key cosign: Azure authentication failed: AADSTS7000215",
      },
      {
        ...base,
        provider: "azurekeyvault:b.vault.azure.net",
        ready: true,
        stale: true,
        error: "key cosign: the vault is unreachable (ECONNREFUSED)",
        errorAt: "2026-12-03T21:00:00.000Z",
      },
      {
        ...base,
        provider: "azurekeyvault:c.vault.azure.net",
        ready: true,
        lastRefresh: "2026-12-03T21:01:00.000Z",
      },
    ]);
    expect(f.map((x) => [x.id, x.severity])).toEqual([
      ["keys.not-ready", "error"],
      ["keys.stale", "warning"],
      ["keys.ok", "ok"],
    ]);
    expect(f[0]!.message).toMatch(
      /a\.vault\.azure\.net is not ready: key cosign: Azure authentication failed/,
    );
    expect(f[1]!.message).toMatch(/at 2026-12-03T21:00:00.000Z: key cosign: the vault is unreachable/);
    expect(f[2]!.message).toBe(
      "key providers: azurekeyvault:c.vault.azure.net (1 object(s), refreshed 2026-12-03T21:01:00.000Z)",
    );
  });
  it("an agent without key providers (older agent, or none used) adds nothing", () => {
    expect(run(undefined)).toEqual([]);
  });
});
