// deploy/components for registry credentials, rendered with `kubectl kustomize` on top of an
// overlay the way an operator includes them: kubelet's credential provider config and plugin
// directory mounted read-only at their host paths (so the provider snippet's paths resolve
// inside the agent), and the workload identity label and annotation where the webhook looks.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { validateConfig } from "../../src/config/agent.js";
import { findKubectl } from "../support/kubectl.js";
import { repoRoot } from "../support/tools.js";

// biome-ignore lint/suspicious/noExplicitAny: rendered YAML is walked freely; the assertions are the types
type Obj = Record<string, any>;

const kubectl = findKubectl();
const tmp = mkdtempSync(path.join(os.tmpdir(), "tollgate-components-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function renderWith(components: string[]): Obj[] {
  const rel = (p: string) => path.relative(tmp, path.join(repoRoot, "deploy", p));
  writeFileSync(
    path.join(tmp, "kustomization.yaml"),
    `resources: [${rel("overlays/enforce")}]\ncomponents: [${components.map(rel).join(", ")}]\n`,
  );
  const out = execFileSync(kubectl!, ["kustomize", tmp], { encoding: "utf8" });
  return parseAllDocuments(out).map((d) => d.toJS() as Obj);
}

describe.skipIf(!kubectl)("deploy/components for registry credentials", () => {
  it("kubelet-credential-providers: config and plugin dir read-only at their host paths; the snippet's paths resolve", () => {
    const objs = renderWith(["components/kubelet-credential-providers"]);
    const ds = objs.find((o) => o.kind === "DaemonSet")!;
    const pod = ds.spec.template.spec;
    const agent = pod.containers.find((c: Obj) => c.name === "agent");
    const snippet = parse(
      readFileSync(
        path.join(repoRoot, "deploy/components/kubelet-credential-providers/agent-config-snippet.yaml"),
        "utf8",
      ),
    ) as Obj;
    // The snippet, added to the shipped agent.yaml, is a valid configuration.
    const cm = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === "tollgate-agent")!;
    const doc = parse(cm.data["agent.yaml"]) as Obj;
    doc.registry = { ...doc.registry, ...snippet };
    const cfg = validateConfig(doc, "agent.yaml + snippet");
    const kubelet = cfg.registry.credentialProviders.find((p) => p.type === "kubelet");
    expect(kubelet).toBeDefined();
    const paths = kubelet?.type === "kubelet" ? [kubelet.config, kubelet.binDir] : [];
    for (const p of paths) {
      const m = agent.volumeMounts.find((x: Obj) => x.mountPath === p);
      expect(m, `${p} is mounted`).toBeDefined();
      expect(m.readOnly).toBe(true);
      const v = pod.volumes.find((x: Obj) => x.name === m.name);
      expect(v.hostPath.path, "same path inside and on the host").toBe(p);
      expect(["File", "Directory"]).toContain(v.hostPath.type);
    }
    // The installer does not need them.
    for (const c of pod.initContainers)
      for (const m of c.volumeMounts) expect(m.name).not.toMatch(/credential-provider/);
  });

  it("azure-workload-identity: the pod label and the service account's client id annotation", () => {
    const objs = renderWith(["components/azure-workload-identity"]);
    const ds = objs.find((o) => o.kind === "DaemonSet")!;
    const sa = objs.find(
      (o) => o.kind === "ServiceAccount" && o.metadata.name === ds.spec.template.spec.serviceAccountName,
    )!;
    expect(ds.spec.template.metadata.labels["azure.workload.identity/use"]).toBe("true");
    // Not in the selector: a DaemonSet's selector cannot change on update.
    expect(ds.spec.selector.matchLabels["azure.workload.identity/use"]).toBeUndefined();
    expect(sa.metadata.annotations["azure.workload.identity/client-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });
});
