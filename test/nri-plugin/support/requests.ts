// A CreateContainer request shaped like the one containerd 2.1 sends for a Kubernetes pod:
// identity plus the container's spec (env from service links, volume mounts, hooks, Linux
// namespaces and resources). Used by the decoder tests and the NRI round-trip benchmark.
import {
  type Container,
  ContainerState,
  CreateContainerRequest,
  type PodSandbox,
} from "../../../src/gen/nri.js";

export function kubernetesCreate(
  i = 0,
  o: { namespace?: string; image?: string } = {},
): { pod: PodSandbox; container: Container } {
  const namespace = o.namespace ?? "team-a";
  const image = o.image ?? "registry.example/team/app:1.0";
  const podId = `${"a".repeat(56)}${String(i).padStart(8, "0")}`;
  const ctrId = `${"c".repeat(56)}${String(i).padStart(8, "0")}`;
  const env = Array.from({ length: 30 }, (_, k) => `SVC_${k}_SERVICE_HOST=10.96.${k}.${i % 250}`);
  const mounts = Array.from({ length: 10 }, (_, k) => ({
    destination: `/var/run/m${k}`,
    type: "bind",
    source: `/var/lib/kubelet/pods/uid-${i}/volumes/kubernetes.io~configmap/v${k}`,
    options: ["rbind", "rprivate", "rw"],
  }));
  const r = CreateContainerRequest.fromPartial({
    pod: {
      id: podId,
      name: `web-${i}`,
      uid: `uid-${i}`,
      namespace,
      labels: { app: "web", "io.cri-containerd.kind": "sandbox", "pod-template-hash": "6d4cf56db6" },
      annotations: {
        "io.kubernetes.cri.sandbox-name": `web-${i}`,
        "io.kubernetes.cri.sandbox-namespace": namespace,
        "kubernetes.io/config.source": "api",
      },
      runtimeHandler: "runc",
      linux: {
        namespaces: [{ type: "network", path: "/var/run/netns/cni-1" }],
        cgroupParent: "/kubepods/burstable/pod",
        cgroupsPath: "kubepods-burstable-pod.slice:cri-containerd:pod",
      },
      pid: 4242,
      ips: ["10.0.0.5"],
    },
    container: {
      id: ctrId,
      podSandboxId: podId,
      name: "app",
      state: ContainerState.CONTAINER_CREATED,
      labels: { "io.cri-containerd.kind": "container", "io.kubernetes.container.name": "app" },
      annotations: {
        "io.kubernetes.cri.image-name": image,
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": podId,
        "io.kubernetes.cri.sandbox-namespace": namespace,
      },
      args: ["/bin/app", "--serve", "--port=8080"],
      env,
      mounts,
      linux: {
        namespaces: [
          { type: "pid", path: "" },
          { type: "network", path: "/var/run/netns/cni-1" },
        ],
        devices: [],
        resources: {
          memory: { limit: { value: 134217728 }, swap: { value: 134217728 } },
          cpu: { shares: { value: 102 }, quota: { value: 50000 }, period: { value: 100000 } },
        },
        oomScoreAdj: { value: 984 },
        cgroupsPath: "kubepods-burstable-pod.slice:cri-containerd:ctr",
      },
      pid: 0,
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1048576, soft: 1048576 }],
    },
  });
  return { pod: r.pod!, container: r.container! };
}
