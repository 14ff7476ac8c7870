// `tollgate doctor`: the pull-time rule set (docs/pull-semantics.md) against this node's
// configuration. A pull has no namespace, so a configuration can look right at create time
// and still block the system components of exempt namespaces at pull time (ErrImagePull on
// a fresh node), or fail every pull closed while the agent restarts.
import { errorMessage } from "../base/errors.js";
import { lstatSync, readFileSync } from "node:fs";
import type { AgentConfig } from "../config/agent.js";
import { ExemptImages } from "../decision/exempt.js";
import { isTable, PLUGIN } from "../containerd/config.js";
import { criImagesConfig, type LoadedConfig, pluginTable } from "./containerd-config.js";
import type { Finding } from "./doctor-finding.js";

/** containerd 2.1's default sandbox image when the configuration names none. */
export const DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.10";

export function sandboxImageOf(cfg: LoadedConfig): string {
  const { table } = criImagesConfig(cfg);
  const pinned = isTable(table.pinned_images) ? table.pinned_images : {};
  if (typeof pinned.sandbox === "string" && pinned.sandbox !== "") return pinned.sandbox;
  const v2 = pluginTable(cfg, PLUGIN.criV2).sandbox_image;
  if (cfg.version < 3 && typeof v2 === "string" && v2 !== "") return v2;
  return DEFAULT_SANDBOX_IMAGE;
}

export function checkPulls(
  cfg: LoadedConfig,
  agent: AgentConfig | undefined,
  add: (f: Finding) => void,
): void {
  if (!agent) {
    add({
      id: "pull.no-agent-config",
      check: "pull",
      severity: "info",
      message: "no agent configuration given: pull-time exemptions and the policy snapshot were not checked",
      fix: "run with --config /etc/tollgate/agent.yaml (the installer writes it there)",
    });
    return;
  }
  const p = agent.policy;
  const exemptNs = p.exemptNamespaces;
  if (exemptNs.length > 0 && p.exemptNamespaceImages.length === 0) {
    add({
      id: "pull.exempt-namespaces-blocked",
      check: "pull",
      severity: "warning",
      message: `pulls have no namespace: images that the exempt namespaces (${exemptNs.join(", ")}) run are checked against the policies in use at pull time, so an unsigned system image (coredns, kube-proxy, CNI) fails with ErrImagePull on a fresh node`,
      fix: "list the registries of your system components in policy.exemptNamespaceImages (e.g. registry.k8s.io/**)",
    });
  }

  // The sandbox image: containerd pulls it for every pod, through the verifier.
  const sandbox = sandboxImageOf(cfg);
  const strip = (pats: string[]) => pats.map((x) => x.replace(/@.*$/, ""));
  const byDigest = new ExemptImages(strip(p.exemptImages.filter((x) => x.includes("@")))).match(sandbox);
  const byName =
    new ExemptImages(p.exemptImages.filter((x) => !x.includes("@"))).match(sandbox) ??
    (exemptNs.length > 0 ? new ExemptImages(p.exemptNamespaceImages).match(sandbox) : undefined);
  if (byDigest === undefined && byName === undefined) {
    add({
      id: "pull.sandbox-not-exempt",
      check: "pull",
      severity: "warning",
      message: `the sandbox image ${sandbox} is not exempt: every new pod's sandbox pull is checked against the policies in use, and no pod starts when it is unsigned`,
      fix: `add ${sandbox}@<digest> to policy.exemptImages (ctr -n k8s.io images ls shows the digest)`,
    });
  } else {
    add({
      id: "pull.sandbox-exempt",
      check: "pull",
      severity: "ok",
      message: `the sandbox image ${sandbox} is exempt${byDigest !== undefined ? " (pinned by digest)" : ""}`,
    });
  }
  const unpinned = p.exemptImages.filter((x) => !x.includes("@"));
  if (unpinned.length > 0) {
    add({
      id: "pull.exempt-unpinned",
      check: "pull",
      severity: "warning",
      message: `exempt images without a digest (${unpinned.join(", ")}): anyone who can push such a name runs it in every namespace`,
      fix: "pin each policy.exemptImages entry by digest (name:tag@sha256:...)",
    });
  }

  if (p.source === "kubernetes") {
    if (p.snapshotPath === "") {
      add({
        id: "pull.no-snapshot",
        check: "pull",
        severity: "warning",
        message:
          "policy.snapshotPath is empty: while the agent restarts, the pull verifier has no policy to decide with (the host has no API server credentials) and every pull that is not exempt fails with the failure policy",
        fix: "set policy.snapshotPath (e.g. /var/lib/tollgate/policy-snapshot.json on a hostPath the agent writes)",
      });
    } else {
      checkSnapshotFile(p.snapshotPath, p.snapshotMaxAgeSeconds, add);
    }
  }
}

function checkSnapshotFile(file: string, maxAgeSeconds: number, add: (f: Finding) => void): void {
  let syncedAt: number | undefined;
  try {
    const st = lstatSync(file);
    if ((st.mode & 0o077) !== 0) {
      add({
        id: "pull.snapshot-mode",
        check: "pull",
        severity: "warning",
        message: `${file} is accessible to group or others; the verifier refuses it`,
        fix: `chmod 600 ${file} (the agent writes it 0600)`,
      });
      return;
    }
    const body = (JSON.parse(readFileSync(file, "utf8")) as { body?: { syncedAt?: string } }).body;
    syncedAt = Date.parse(body?.syncedAt ?? "");
  } catch (e) {
    add({
      id: "pull.snapshot-missing",
      check: "pull",
      severity: "warning",
      message: `no readable policy snapshot at ${file} (${errorMessage(e).split("\n")[0]}): until the agent writes one, pulls while it restarts fail with the failure policy`,
      fix: "check that the agent runs, has synced, and mounts the snapshot's directory from the host",
    });
    return;
  }
  const age = Math.round((Date.now() - (syncedAt ?? 0)) / 1000);
  if (!Number.isFinite(age) || age > maxAgeSeconds) {
    add({
      id: "pull.snapshot-stale",
      check: "pull",
      severity: "warning",
      message: `the policy snapshot ${file} is ${Number.isFinite(age) ? `${age}s` : "of unknown age"} old, older than policy.snapshotMaxAgeSeconds (${maxAgeSeconds}s): it is not used`,
      fix: "check that the agent is synced with the API server (tollgate doctor's agent checks, its logs)",
    });
  } else {
    add({
      id: "pull.snapshot",
      check: "pull",
      severity: "ok",
      message: `policy snapshot ${file} is ${age}s old (maximum ${maxAgeSeconds}s)`,
    });
  }
}
