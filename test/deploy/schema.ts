// A validator for the structural OpenAPI v3 subset Kubernetes uses (CRD schemas): type,
// enum, required, properties/additionalProperties (unknown fields are errors unless
// x-kubernetes-preserve-unknown-fields), items, min/maxItems, min/maxLength, pattern,
// minimum/maximum, x-kubernetes-list-type=map uniqueness, and x-kubernetes-validations CEL
// rules, evaluated with a real CEL implementation. A rule it cannot evaluate is an error,
// never a silent pass.

import { compileExpression, formatIssue, isCelIssue } from "../../src/engine/cel/index.js";

export interface Schema {
  type?: string;
  enum?: unknown[];
  required?: string[];
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  description?: string;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-list-type"?: string;
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-validations"?: Array<{ rule: string; message?: string }>;
  "x-kubernetes-int-or-string"?: boolean;
}

function typeOf(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

export function validate(schema: Schema, value: unknown, at = ""): string[] {
  const errs: string[] = [];
  check(schema, value, at || "(root)", errs);
  return errs;
}

function check(s: Schema, v: unknown, at: string, errs: string[]): void {
  const t = typeOf(v);
  if (s["x-kubernetes-int-or-string"]) {
    if (t !== "integer" && t !== "string") errs.push(`${at}: want integer or string, got ${t}`);
    return;
  }
  if (s.type && !(s.type === t || (s.type === "number" && t === "integer"))) {
    errs.push(`${at}: want ${s.type}, got ${t}`);
    return;
  }
  if (s.enum && !s.enum.includes(v))
    errs.push(`${at}: ${JSON.stringify(v)} not in ${JSON.stringify(s.enum)}`);
  if (typeof v === "string") {
    if (s.minLength !== undefined && v.length < s.minLength) errs.push(`${at}: shorter than ${s.minLength}`);
    if (s.maxLength !== undefined && v.length > s.maxLength) errs.push(`${at}: longer than ${s.maxLength}`);
    if (s.pattern !== undefined && !new RegExp(s.pattern).test(v))
      errs.push(`${at}: ${JSON.stringify(v)} does not match ${s.pattern}`);
  }
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) errs.push(`${at}: below ${s.minimum}`);
    if (s.maximum !== undefined && v > s.maximum) errs.push(`${at}: above ${s.maximum}`);
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) errs.push(`${at}: fewer than ${s.minItems} items`);
    if (s.maxItems !== undefined && v.length > s.maxItems) errs.push(`${at}: more than ${s.maxItems} items`);
    if (s["x-kubernetes-list-type"] === "map") {
      const keys = s["x-kubernetes-list-map-keys"] ?? [];
      const seen = new Set<string>();
      for (const x of v) {
        const k = JSON.stringify(keys.map((key) => (x as Record<string, unknown>)?.[key]));
        if (seen.has(k)) errs.push(`${at}: duplicate list-map key ${k}`);
        seen.add(k);
      }
    }
    v.forEach((x, i) => {
      if (s.items) check(s.items, x, `${at}[${i}]`, errs);
    });
  }
  if (t === "object") {
    const o = v as Record<string, unknown>;
    for (const r of s.required ?? []) if (!(r in o)) errs.push(`${at}.${r}: required`);
    for (const [k, x] of Object.entries(o)) {
      const sub = s.properties?.[k];
      if (sub) check(sub, x, `${at}.${k}`, errs);
      else if (typeof s.additionalProperties === "object")
        check(s.additionalProperties, x, `${at}.${k}`, errs);
      else if (s.additionalProperties === true || s["x-kubernetes-preserve-unknown-fields"]) continue;
      else if (s.properties || s.additionalProperties === false) errs.push(`${at}.${k}: unknown field`);
    }
  }
  for (const rule of s["x-kubernetes-validations"] ?? []) {
    let ok: boolean;
    try {
      ok = evalRule(rule.rule, v);
    } catch (e) {
      errs.push(`${at}: cannot evaluate rule ${JSON.stringify(rule.rule)}: ${(e as Error).message}`);
      continue;
    }
    if (!ok) errs.push(`${at}: ${rule.message ?? `rule ${rule.rule} failed`}`);
  }
}

/**
 * Evaluates a CRD validation rule with a real CEL implementation (the engine's, which wraps
 * @bufbuild/cel), `self` bound to the object as the API server binds it.
 */
export function evalRule(rule: string, self: unknown): boolean {
  const compiled = compileExpression(rule, { self: { k: "dyn" } }, { requireBool: true, check: false });
  if (isCelIssue(compiled)) throw new Error(formatIssue(compiled));
  const r = compiled.evaluate({ self: self ?? {} });
  if (!r.ok) throw new Error(r.error);
  if (typeof r.value !== "boolean") throw new Error("rule does not evaluate to a boolean");
  return r.value;
}

// ---------------------------------------------------------------------------------------
// Kubernetes object shapes: the fields of the built-in kinds this project's manifests use,
// with their types (a subset of the upstream OpenAPI; anything else is flagged as unknown,
// which catches misspelt fields kubectl would reject or silently drop).

const str: Schema = { type: "string", minLength: 1 };
const strMap: Schema = { type: "object", additionalProperties: { type: "string" } };
const strList: Schema = { type: "array", items: { type: "string" } };
const intOrStr: Schema = { "x-kubernetes-int-or-string": true };
const dns1123Label = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const dns1123Subdomain = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

const metadata = (namespaced: boolean, namePattern = dns1123Subdomain): Schema => ({
  type: "object",
  required: namespaced ? ["name", "namespace"] : ["name"],
  properties: {
    name: { type: "string", minLength: 1, maxLength: 253, pattern: namePattern },
    ...(namespaced ? { namespace: { type: "string", pattern: dns1123Label, maxLength: 63 } } : {}),
    labels: strMap,
    annotations: strMap,
  },
});

const top = (
  apiVersion: string,
  kind: string,
  namespaced: boolean,
  rest: Record<string, Schema>,
): Schema => ({
  type: "object",
  required: ["apiVersion", "kind", "metadata"],
  properties: {
    apiVersion: { type: "string", enum: [apiVersion] },
    kind: { type: "string", enum: [kind] },
    metadata: metadata(namespaced),
    ...rest,
  },
});

const keyRefs: Schema = {
  type: "object",
  properties: {
    configMapKeyRef: { type: "object", required: ["name", "key"], properties: { name: str, key: str } },
    secretKeyRef: { type: "object", required: ["name", "key"], properties: { name: str, key: str } },
    fieldRef: { type: "object", required: ["fieldPath"], properties: { fieldPath: str } },
  },
};

const probe: Schema = {
  type: "object",
  properties: {
    httpGet: {
      type: "object",
      required: ["port"],
      properties: { path: str, port: intOrStr, scheme: { type: "string", enum: ["HTTP", "HTTPS"] } },
    },
    exec: { type: "object", properties: { command: strList } },
    initialDelaySeconds: { type: "integer", minimum: 0 },
    periodSeconds: { type: "integer", minimum: 1 },
    timeoutSeconds: { type: "integer", minimum: 1 },
    failureThreshold: { type: "integer", minimum: 1 },
    successThreshold: { type: "integer", minimum: 1 },
  },
};

const quantity: Schema = intOrStr;
const container: Schema = {
  type: "object",
  required: ["name", "image"],
  properties: {
    name: { type: "string", pattern: dns1123Label, maxLength: 63 },
    image: str,
    imagePullPolicy: { type: "string", enum: ["Always", "IfNotPresent", "Never"] },
    command: strList,
    args: strList,
    env: {
      type: "array",
      items: {
        type: "object",
        required: ["name"],
        properties: { name: str, value: { type: "string" }, valueFrom: keyRefs },
      },
    },
    ports: {
      type: "array",
      items: {
        type: "object",
        required: ["containerPort"],
        properties: {
          name: { type: "string", pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", maxLength: 15 },
          containerPort: { type: "integer", minimum: 1, maximum: 65535 },
          protocol: { type: "string", enum: ["TCP", "UDP", "SCTP"] },
        },
      },
    },
    securityContext: {
      type: "object",
      properties: {
        runAsUser: { type: "integer", minimum: 0 },
        runAsNonRoot: { type: "boolean" },
        privileged: { type: "boolean" },
        allowPrivilegeEscalation: { type: "boolean" },
        readOnlyRootFilesystem: { type: "boolean" },
        capabilities: { type: "object", properties: { add: strList, drop: strList } },
      },
    },
    resources: {
      type: "object",
      properties: {
        requests: { type: "object", additionalProperties: quantity },
        limits: { type: "object", additionalProperties: quantity },
      },
    },
    startupProbe: probe,
    livenessProbe: probe,
    readinessProbe: probe,
    volumeMounts: {
      type: "array",
      items: {
        type: "object",
        required: ["name", "mountPath"],
        properties: {
          name: str,
          mountPath: { type: "string", pattern: "^/" },
          readOnly: { type: "boolean" },
          subPath: { type: "string" },
          mountPropagation: { type: "string", enum: ["None", "HostToContainer", "Bidirectional"] },
        },
      },
    },
  },
};

const volume: Schema = {
  type: "object",
  required: ["name"],
  properties: {
    name: { type: "string", pattern: dns1123Label, maxLength: 63 },
    configMap: {
      type: "object",
      required: ["name"],
      properties: { name: str, defaultMode: { type: "integer" }, optional: { type: "boolean" } },
    },
    hostPath: {
      type: "object",
      required: ["path"],
      properties: {
        path: { type: "string", pattern: "^/" },
        type: {
          type: "string",
          enum: [
            "",
            "DirectoryOrCreate",
            "Directory",
            "FileOrCreate",
            "File",
            "Socket",
            "CharDevice",
            "BlockDevice",
          ],
        },
      },
    },
    emptyDir: {
      type: "object",
      properties: { medium: { type: "string", enum: ["", "Memory"] }, sizeLimit: quantity },
    },
  },
};

const podSpec: Schema = {
  type: "object",
  required: ["containers"],
  properties: {
    serviceAccountName: str,
    priorityClassName: str,
    terminationGracePeriodSeconds: { type: "integer", minimum: 0 },
    hostPID: { type: "boolean" },
    hostNetwork: { type: "boolean" },
    nodeSelector: strMap,
    tolerations: {
      type: "array",
      items: {
        type: "object",
        properties: {
          key: str,
          operator: { type: "string", enum: ["Exists", "Equal"] },
          value: { type: "string" },
          effect: { type: "string", enum: ["NoSchedule", "PreferNoSchedule", "NoExecute"] },
        },
      },
    },
    initContainers: { type: "array", items: container },
    containers: { type: "array", minItems: 1, items: container },
    volumes: { type: "array", items: volume },
  },
};

const labelSelector: Schema = {
  type: "object",
  required: ["matchLabels"],
  properties: { matchLabels: strMap },
};
const rbacSubject: Schema = {
  type: "object",
  required: ["kind", "name"],
  properties: {
    kind: { type: "string", enum: ["ServiceAccount", "User", "Group"] },
    name: str,
    namespace: str,
    apiGroup: { type: "string" },
  },
};
const roleRef: Schema = {
  type: "object",
  required: ["apiGroup", "kind", "name"],
  properties: {
    apiGroup: { type: "string", enum: ["rbac.authorization.k8s.io"] },
    kind: { type: "string", enum: ["ClusterRole", "Role"] },
    name: str,
  },
};

export const KUBE_SCHEMAS: Record<string, { schema: Schema; namespaced: boolean }> = {
  Namespace: { namespaced: false, schema: top("v1", "Namespace", false, {}) },
  ServiceAccount: { namespaced: true, schema: top("v1", "ServiceAccount", true, {}) },
  ConfigMap: { namespaced: true, schema: top("v1", "ConfigMap", true, { data: strMap }) },
  ClusterRole: {
    namespaced: false,
    schema: top("rbac.authorization.k8s.io/v1", "ClusterRole", false, {
      rules: {
        type: "array",
        items: {
          type: "object",
          required: ["apiGroups", "resources", "verbs"],
          properties: { apiGroups: strList, resources: strList, verbs: strList, resourceNames: strList },
        },
      },
    }),
  },
  ClusterRoleBinding: {
    namespaced: false,
    schema: top("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", false, {
      roleRef,
      subjects: { type: "array", minItems: 1, items: rbacSubject },
    }),
  },
  RoleBinding: {
    namespaced: true,
    schema: top("rbac.authorization.k8s.io/v1", "RoleBinding", true, {
      roleRef,
      subjects: { type: "array", minItems: 1, items: rbacSubject },
    }),
  },
  DaemonSet: {
    namespaced: true,
    schema: top("apps/v1", "DaemonSet", true, {
      spec: {
        type: "object",
        required: ["selector", "template"],
        properties: {
          selector: labelSelector,
          updateStrategy: {
            type: "object",
            properties: {
              type: { type: "string", enum: ["RollingUpdate", "OnDelete"] },
              rollingUpdate: { type: "object", properties: { maxUnavailable: intOrStr, maxSurge: intOrStr } },
            },
          },
          template: {
            type: "object",
            required: ["metadata", "spec"],
            properties: {
              metadata: { type: "object", properties: { labels: strMap, annotations: strMap } },
              spec: podSpec,
            },
          },
        },
      },
    }),
  },
  CustomResourceDefinition: {
    namespaced: false,
    // The CRD's own content is checked by its owners (test/engine/policy/crd.test.ts); here: envelope.
    schema: {
      ...top("apiextensions.k8s.io/v1", "CustomResourceDefinition", false, {}),
      properties: {
        ...top("apiextensions.k8s.io/v1", "CustomResourceDefinition", false, {}).properties,
        spec: {
          type: "object",
          required: ["group", "names", "scope", "versions"],
          "x-kubernetes-preserve-unknown-fields": true,
        },
      },
    },
  },
};
