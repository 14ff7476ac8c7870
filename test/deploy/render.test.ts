// Renders deploy/ with `kubectl kustomize` (base, both overlays, the examples) and checks
// every object: ImagePolicies against the CRD's own OpenAPI v3 schema and the engine's
// validator (and the examples compile with their trust material through the real file
// policy source), built-in kinds against their Kubernetes shape, RBAC verbs, images,
// volumes ↔ mounts, and that the DaemonSet mounts every host path the agent's ConfigMap
// and the installer's flags name.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { type AgentConfig, parseListen, validateConfig } from "../../src/config/agent.js";
import { validatePolicy } from "../../src/engine/policy/index.js";
import { FilePolicySource } from "../../src/policy-source/files.js";
import { findKubectl } from "../support/kubectl.js";
import { repoRoot } from "../support/tools.js";
import { KUBE_SCHEMAS, type Schema, validate } from "./schema.js";

// biome-ignore lint/suspicious/noExplicitAny: rendered YAML is walked freely; the assertions are the types
type Obj = Record<string, any>;

const kubectl = findKubectl();
if (!kubectl)
  console.warn(
    "test/deploy/render.test.ts: SKIPPED — kubectl is not installed (scripts/install-deps.sh installs it; in CI this fails instead)",
  );

function render(dir: string): Obj[] {
  const out = execFileSync(kubectl!, ["kustomize", path.join(repoRoot, "deploy", dir)], {
    encoding: "utf8",
    maxBuffer: 16 << 20,
  });
  return parseAllDocuments(out).map((d) => {
    if (d.errors.length > 0) throw new Error(`${dir}: ${d.errors[0]!.message}`);
    return d.toJS() as Obj;
  });
}

const TREES = ["crds", "base", "overlays/audit", "overlays/enforce", "examples"] as const;
const rendered: Record<string, Obj[]> = {};
const get = (tree: string) => {
  rendered[tree] ??= render(tree);
  return rendered[tree]!;
};
const one = (objs: Obj[], kind: string, name?: string): Obj => {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  expect(found, `${kind}${name ? `/${name}` : ""}`).toHaveLength(1);
  return found[0]!;
};

function crdSchema(): Schema {
  const crd = one(get("crds"), "CustomResourceDefinition", "imagepolicies.tollgate.dev");
  const v = crd.spec.versions.find((x: Obj) => x.storage);
  return v.schema.openAPIV3Schema as Schema;
}

function agentConfigOf(objs: Obj[]): AgentConfig {
  const cm = one(objs, "ConfigMap", "tollgate-agent");
  const doc = parseAllDocuments(cm.data["agent.yaml"])[0]!.toJS();
  return validateConfig(doc, "ConfigMap tollgate-system/tollgate-agent agent.yaml");
}

// ---- DaemonSet path resolution -----------------------------------------------------------

interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}

/** The host path behind `containerPath` in `c` (longest mount prefix; hostPath volumes only). */
function hostPathBehind(c: Obj, volumes: Obj[], containerPath: string): string | undefined {
  const mounts = ((c.volumeMounts ?? []) as Mount[])
    .filter(
      (m) => containerPath === m.mountPath || containerPath.startsWith(`${m.mountPath.replace(/\/$/, "")}/`),
    )
    .sort((a, b) => b.mountPath.length - a.mountPath.length);
  const m = mounts[0];
  if (!m) return undefined;
  const vol = volumes.find((v) => v.name === m.name);
  if (!vol?.hostPath) return undefined;
  return path.posix.join(vol.hostPath.path, path.posix.relative(m.mountPath, containerPath));
}

function mountOf(c: Obj, containerPath: string): Mount | undefined {
  return ((c.volumeMounts ?? []) as Mount[])
    .filter((m) => containerPath === m.mountPath || containerPath.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
}

function flagValue(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === `--${name}`) return args[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

let tmp: string | undefined;
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe.skipIf(!kubectl)("deploy/ renders with kubectl kustomize", () => {
  it.each(TREES)("%s: every object has a known kind and the Kubernetes shape of that kind", (tree) => {
    const objs = get(tree);
    expect(objs.length).toBeGreaterThan(0);
    const schema = crdSchema();
    const seen = new Set<string>();
    for (const o of objs) {
      const id = `${o.kind}/${o.metadata?.namespace ?? ""}/${o.metadata?.name}`;
      expect(seen.has(id), `duplicate ${id}`).toBe(false);
      seen.add(id);
      if (o.kind === "ImagePolicy") {
        expect(o.apiVersion).toBe("tollgate.dev/v1alpha1");
        expect(o.metadata?.namespace, `${id}: cluster-scoped`).toBeUndefined();
        expect(validate(schema, o), `${id} against the CRD schema`).toEqual([]);
        const v = validatePolicy(o);
        expect(v.ok ? [] : v.issues, `${id} against the engine's validator`).toEqual([]);
        continue;
      }
      const k = KUBE_SCHEMAS[o.kind];
      expect(k, `${id}: unexpected kind ${o.kind}`).toBeDefined();
      expect(validate(k!.schema, o), id).toEqual([]);
      if (!k!.namespaced) expect(o.metadata.namespace, `${id} is cluster-scoped`).toBeUndefined();
    }
  });

  it.each(TREES)(
    "%s: applies on a fresh cluster in one step — no object depends on a CRD installed by the same apply",
    (tree) => {
      const objs = get(tree);
      const crds = objs.filter((o) => o.kind === "CustomResourceDefinition");
      for (const crd of crds) {
        const group = crd.spec.group as string;
        const kind = crd.spec.names.kind as string;
        const users = objs.filter((o) => o.kind === kind && String(o.apiVersion).startsWith(`${group}/`));
        expect(
          users.map((o) => o.metadata.name),
          `${tree} installs ${kind} and its CRD together`,
        ).toEqual([]);
      }
      // Only the crds tree carries CRDs; every other tree expects them installed before.
      if (tree === "crds") expect(objs.every((o) => o.kind === "CustomResourceDefinition")).toBe(true);
      else expect(crds).toEqual([]);
    },
  );

  it.each(TREES)("%s: namespaced objects live in namespaces the tree or the cluster defines", (tree) => {
    const objs = [...get(tree), ...get("base")];
    const namespaces = new Set(objs.filter((o) => o.kind === "Namespace").map((o) => o.metadata.name));
    for (const o of get(tree)) {
      if (o.metadata.namespace)
        expect(namespaces, `${o.kind}/${o.metadata.name}`).toContain(o.metadata.namespace);
    }
  });

  it("RBAC: reads are get/list/watch; writes exactly status patch, events create/patch, the status Lease; Secrets and ConfigMaps only through a RoleBinding in tollgate-trust", () => {
    const objs = get("base");
    const roles = objs.filter((o) => o.kind === "ClusterRole" || o.kind === "Role");
    expect(roles.length).toBeGreaterThan(0);
    const rules = (name: string) =>
      roles
        .find((r) => r.metadata.name === name)!
        .rules.map((x: Obj) => ({
          apiGroups: x.apiGroups,
          resources: x.resources,
          verbs: [...(x.verbs as string[])].sort(),
          ...(x.resourceNames ? { resourceNames: x.resourceNames } : {}),
        }));
    const writers = new Set(["tollgate-agent-writer", "tollgate-status-lease"]);
    for (const r of roles.filter((r) => !writers.has(r.metadata.name))) {
      for (const rule of r.rules)
        expect([...rule.verbs].sort(), `${r.metadata.name}`).toEqual(["get", "list", "watch"]);
    }
    // Everything the agent may write, and nothing more.
    expect(rules("tollgate-agent-writer")).toEqual([
      { apiGroups: ["tollgate.dev"], resources: ["imagepolicies/status"], verbs: ["patch"] },
      { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
    ]);
    expect(rules("tollgate-status-lease")).toEqual([
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        verbs: ["get", "update"],
        resourceNames: ["tollgate-status-writer"],
      },
    ]);
    // The Lease role is bound only in the agent's namespace, to the Lease the config names.
    const leaseBinding = objs.filter(
      (o) => o.kind.endsWith("Binding") && o.roleRef.name === "tollgate-status-lease",
    );
    expect(leaseBinding.map((b) => `${b.kind}/${b.metadata.namespace}`)).toEqual([
      "RoleBinding/tollgate-system",
    ]);
    const grants = (roleName: string) =>
      roles.find((r) => r.metadata.name === roleName)!.rules.flatMap((x: Obj) => x.resources as string[]);
    // Cluster-wide bindings never reach secrets/configmaps.
    for (const b of objs.filter((o) => o.kind === "ClusterRoleBinding")) {
      const res = grants(b.roleRef.name);
      expect(res).not.toContain("secrets");
      expect(res).not.toContain("configmaps");
    }
    const agentRes = objs
      .filter((o) => o.kind === "ClusterRoleBinding")
      .flatMap((b) => grants(b.roleRef.name))
      .sort();
    expect(agentRes).toEqual(["events", "imagepolicies", "imagepolicies/status", "namespaces"]);
    const rb = one(objs, "RoleBinding", "tollgate-trust-reader");
    expect(rb.metadata.namespace).toBe("tollgate-trust");
    expect(grants(rb.roleRef.name).sort()).toEqual(["configmaps", "secrets"]);
    // Every binding's subject is the agent's ServiceAccount, which exists.
    const sa = one(objs, "ServiceAccount", "tollgate-agent");
    for (const b of objs.filter((o) => o.kind.endsWith("Binding"))) {
      expect(b.subjects).toEqual([
        { kind: "ServiceAccount", name: sa.metadata.name, namespace: sa.metadata.namespace },
      ]);
      expect(roles.map((r) => r.metadata.name)).toContain(b.roleRef.name);
    }
  });

  it.each(["base", "overlays/audit", "overlays/enforce"])(
    "%s: DaemonSet images, volumes ↔ mounts, security, probes",
    (tree) => {
      const objs = get(tree);
      const ds = one(objs, "DaemonSet", "tollgate-agent");
      const pod = ds.spec.template.spec;
      expect(ds.spec.selector.matchLabels).toEqual(
        Object.fromEntries(
          Object.entries(ds.spec.template.metadata.labels).filter(([k]) => k in ds.spec.selector.matchLabels),
        ),
      );
      expect(pod.serviceAccountName).toBe(one(objs, "ServiceAccount").metadata.name);
      const containers: Obj[] = [...(pod.initContainers ?? []), ...pod.containers];
      const volumes: Obj[] = pod.volumes;
      const volNames = volumes.map((v) => v.name);
      expect(new Set(volNames).size).toBe(volNames.length);
      const used = new Set<string>();
      for (const c of containers) {
        // A pinned, non-latest image.
        expect(c.image).toMatch(
          /^[a-z0-9.-]+(:[0-9]+)?\/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$/,
        );
        expect(c.image).not.toMatch(/:latest$/);
        const paths = (c.volumeMounts as Mount[]).map((m) => m.mountPath);
        expect(new Set(paths).size, `${c.name}: duplicate mountPath`).toBe(paths.length);
        for (const m of c.volumeMounts as Mount[]) {
          expect(volNames, `${c.name} mounts ${m.name}`).toContain(m.name);
          used.add(m.name);
        }
        // Least privilege: root for root-only host sockets, but no capabilities, no privilege.
        expect(c.securityContext.privileged).toBe(false);
        expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
        expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
        expect(c.securityContext.capabilities.drop).toEqual(["ALL"]);
        expect(c.resources.requests.memory).toBeDefined();
        expect(c.resources.limits.memory).toBeDefined();
      }
      expect([...used].sort(), "every volume is mounted somewhere").toEqual([...volNames].sort());
      for (const v of volumes) if (v.configMap) one(objs, "ConfigMap", v.configMap.name);
      const images = new Set(containers.map((c) => c.image));
      expect(images.size, "installer and agent run the same image").toBe(1);
      // The agent's own image must be exempt, or a node without a running agent cannot pull it.
      const cfg = agentConfigOf(objs);
      // Exactly that image (not its whole repository), and every other exemption pinned by digest.
      const own = [...images][0]!;
      expect(cfg.policy.exemptImages).toContain(own);
      for (const e of cfg.policy.exemptImages.filter((x: string) => x !== own))
        expect(e, "shipped exemptions are pinned by digest").toMatch(/@sha256:[0-9a-f]{64}$/);

      const agent = pod.containers.find((c: Obj) => c.name === "agent");
      const listen = parseListen(cfg.metrics.listen)!;
      expect(listen.host, "kubelet probes reach the pod IP").toBe("0.0.0.0");
      const port = agent.ports.find((p: Obj) => p.name === "metrics");
      expect(port.containerPort).toBe(listen.port);
      expect(agent.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "metrics" });
      expect(agent.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "metrics" });
      expect(agent.startupProbe.httpGet.path).toBe("/healthz");
    },
  );

  it.each(["base", "overlays/audit", "overlays/enforce"])(
    "%s: the DaemonSet mounts every host path the agent configuration and the installer name",
    (tree) => {
      const objs = get(tree);
      const cfg = agentConfigOf(objs);
      const pod = one(objs, "DaemonSet", "tollgate-agent").spec.template.spec;
      const agent = pod.containers.find((c: Obj) => c.name === "agent");
      const install = pod.initContainers.find((c: Obj) => c.name === "install");
      const volumes: Obj[] = pod.volumes;

      // The agent reads its configuration from the ConfigMap at the path its args name.
      const configPath = flagValue(agent.args, "config")!;
      const cfgMount = mountOf(agent, configPath)!;
      expect(volumes.find((v) => v.name === cfgMount.name)?.configMap?.name).toBe("tollgate-agent");

      // Same path inside and on the host: the agent's configuration names host paths, and the
      // installer copies it to the host for the verifier.
      const samePath = (what: string, p: string) =>
        expect(hostPathBehind(agent, volumes, p), `${what} ${p}`).toBe(p);
      samePath("NRI socket dir", path.posix.dirname(cfg.nri.socket));
      samePath("containerd socket", cfg.containerd.address.replace(/^unix:\/\//, ""));
      samePath("agent API socket dir", path.posix.dirname(cfg.api.socket));
      samePath("registry hosts dir", cfg.registry.certsDir);
      // The policy snapshot is written by the agent and read by the verifier on the host.
      samePath("policy snapshot dir", path.posix.dirname(cfg.policy.snapshotPath));
      expect(mountOf(agent, path.posix.dirname(cfg.policy.snapshotPath))!.readOnly).toBeFalsy();
      samePath("NRI state dir", path.posix.dirname(cfg.nri.statePath));
      expect(mountOf(agent, path.posix.dirname(cfg.nri.statePath))!.readOnly).toBeFalsy();
      const socketVol = volumes.find(
        (v) => v.name === mountOf(agent, cfg.containerd.address.replace(/^unix:\/\//, ""))!.name,
      )!;
      expect(socketVol.hostPath.type).toBe("Socket");
      for (const p of [path.posix.dirname(cfg.nri.socket), path.posix.dirname(cfg.api.socket)])
        expect(mountOf(agent, p)!.readOnly, `${p} must be writable (sockets)`).toBeFalsy();

      // The installer: --host-root + each host path it writes maps back to that host path.
      const args: string[] = install.args;
      const hostRoot = flagValue(args, "host-root")!;
      expect(hostRoot).toBe("/host");
      expect(flagValue(args, "agent-config")).toBe(configPath);
      expect(mountOf(install, configPath)!.name).toBe(cfgMount.name);
      const binDir = flagValue(args, "bin-dir")!;
      const writes = {
        "verifier bin_dir": binDir,
        "bin_dir's parent (staging for the atomic rename)": path.posix.dirname(binDir),
        "verifier config": flagValue(args, "verifier-config")!,
        "containerd drop-in": flagValue(args, "config-dropin")!,
        "containerd main config": flagValue(args, "containerd-config")!,
      };
      for (const [what, p] of Object.entries(writes)) {
        expect(p, what).toMatch(/^\//);
        expect(hostPathBehind(install, volumes, `${hostRoot}${p}`), what).toBe(p);
      }
      // Staging and target on one mount, or the rename crosses filesystems.
      expect(mountOf(install, `${hostRoot}${binDir}`)!.name).toBe(
        mountOf(install, `${hostRoot}${path.posix.dirname(binDir)}`)!.name,
      );
      // The verifier on the host reads the installed copy at the path it defaults to.
      expect(flagValue(args, "verifier-config")).toBe("/etc/tollgate/agent.yaml");
      expect(flagValue(args, "verifier-binary")).toMatch(/tollgate-verify$/);
      expect(flagValue(args, "restart")).toBe("none");
      expect(install.command.slice(-1)).toEqual(["install"]);
      expect(agent.command.slice(-1)).toEqual(["agent"]);
    },
  );

  it("overlays: the default policy exists with the overlay's mode; audit differs from base only in failure policy", () => {
    const base = agentConfigOf(get("base"));
    for (const [tree, mode, fp] of [
      ["overlays/audit", "Audit", "Open"],
      ["overlays/enforce", "Enforce", "Closed"],
    ] as const) {
      const objs = get(tree);
      const cfg = agentConfigOf(objs);
      const def = one(objs, "ImagePolicy", cfg.policy.defaultPolicy);
      expect(def.spec.mode).toBe(mode);
      expect(def.spec.failurePolicy).toBe(fp);
      expect(cfg.pullVerifier.failurePolicy).toBe(fp);
      expect({ ...cfg, pullVerifier: { ...cfg.pullVerifier, failurePolicy: "X" } }).toEqual({
        ...base,
        pullVerifier: { ...base.pullVerifier, failurePolicy: "X" },
      });
    }
    expect(get("base").some((o) => o.kind === "ImagePolicy")).toBe(false);
  });

  it("examples: notation, cosign and audit-only policies, each selected by an annotated Namespace", () => {
    const objs = get("examples");
    const policies = objs.filter((o) => o.kind === "ImagePolicy");
    const kinds = (p: Obj) => p.spec.verifiers.map((v: Obj) => (v.notation ? "notation" : "cosign"));
    expect(policies.some((p) => kinds(p).includes("notation") && p.spec.mode === "Enforce")).toBe(true);
    expect(policies.some((p) => kinds(p).includes("cosign") && p.spec.mode === "Enforce")).toBe(true);
    expect(policies.some((p) => p.spec.mode === "Audit")).toBe(true);
    for (const p of policies) {
      const ns = objs.filter(
        (o) => o.kind === "Namespace" && o.metadata.annotations?.["tollgate.dev/policy"] === p.metadata.name,
      );
      expect(ns.length, `a namespace selecting ${p.metadata.name}`).toBeGreaterThan(0);
    }
  });

  it("examples and overlay policies load and compile in the agent's file policy source (trust material resolved)", async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "tollgate-render-"));
    const docs = [
      ...get("examples"),
      ...get("overlays/enforce").filter(
        (o) =>
          o.kind === "ImagePolicy" || (o.kind === "ConfigMap" && o.metadata.namespace === "tollgate-trust"),
      ),
    ];
    writeFileSync(path.join(tmp, "all.yaml"), docs.map((d) => stringify(d)).join("---\n"));
    const src = new FilePolicySource({ dir: tmp, config: { defaultPolicy: "default" }, rescanIntervalMs: 0 });
    await src.start();
    try {
      const st = src.status();
      expect(st.rejected).toEqual([]);
      expect(st.policies.map((p) => p.name).sort()).toEqual([
        "audit-only",
        "default",
        "team-a-cosign",
        "team-b-notation",
      ]);
      for (const [ns, policy] of [
        ["team-a", "team-a-cosign"],
        ["team-b", "team-b-notation"],
        ["sandbox", "audit-only"],
        ["other", "default"],
      ]) {
        const sel = src.select(ns!);
        expect(sel.kind === "policy" ? sel.policy.name : sel, ns).toBe(policy);
      }
    } finally {
      await src.stop();
    }
  });
});

describe.skipIf(!kubectl)("the checks above catch broken objects", () => {
  const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v));
  it("Kubernetes shapes: misspelt field, wrong type, bad enum, missing required", () => {
    const ds = clone(one(get("base"), "DaemonSet", "tollgate-agent"));
    const c = ds.spec.template.spec.containers[0];
    c.volumeMount = c.volumeMounts;
    c.ports[0].containerPort = "9464";
    c.imagePullPolicy = "Sometimes";
    delete ds.spec.selector;
    const errs = validate(KUBE_SCHEMAS.DaemonSet!.schema, ds);
    expect(errs.join("\n")).toMatch(/containers\[0\]\.volumeMount: unknown field/);
    expect(errs.join("\n")).toMatch(/containerPort: want integer, got string/);
    expect(errs.join("\n")).toMatch(/imagePullPolicy: "Sometimes" not in/);
    expect(errs.join("\n")).toMatch(/spec\.selector: required/);
  });
  it("the CRD schema: CEL one-of rules, enums, patterns, list-map keys, unknown fields", () => {
    const schema = crdSchema();
    const p = clone(one(get("examples"), "ImagePolicy", "team-a-cosign"));
    p.spec.verifiers.push({
      ...p.spec.verifiers[0],
      notation: { trustedIdentities: ["*"], trustStores: [{ name: "x", certificates: "y" }] },
    });
    p.spec.verifiers[0].cosign.keys[0].pem = "inline too";
    p.spec.mode = "enforce";
    p.spec.imagez = ["**"];
    p.spec.verifiers.push({ name: "Bad_Name", cosign: {} });
    const errs = validate(schema, p).join("\n");
    expect(errs).toMatch(/duplicate list-map key/);
    expect(errs).toMatch(/verifiers\[1\]: exactly one of notation, cosign must be set/);
    expect(errs).toMatch(
      /keys\[0\]: exactly one of pem, secretRef, configMapRef, keyManagementProvider, kms must be set/,
    );
    expect(errs).toMatch(/spec\.mode: "enforce" not in/);
    expect(errs).toMatch(/spec\.imagez: unknown field/);
    expect(errs).toMatch(/verifiers\[2\]\.name: "Bad_Name" does not match/);
    expect(errs).toMatch(/verifiers\[2\]\.cosign: one of keys, keyless is required/);
  });
  it("CEL rules are evaluated for real; one that cannot be evaluated is an error, not a pass", () => {
    const sized = { type: "object", "x-kubernetes-validations": [{ rule: "self.size() > 1" }] };
    expect(validate(sized, {}).join("")).toMatch(/rule self.size\(\) > 1 failed/);
    expect(validate(sized, { a: 1, b: 2 })).toEqual([]);
    for (const rule of ["self.size() >", "self.a.b == 1", "1 + 1"]) {
      const errs = validate({ type: "object", "x-kubernetes-validations": [{ rule }] }, { a: 1 });
      expect(errs.join("")).toMatch(/cannot evaluate rule/);
    }
  });
});
