// Kubernetes policy source: entry points for the agent and the CLI.
import { KubeConfig } from "@kubernetes/client-node";
import type { CompiledPolicy } from "../engine/policy/model.js";
import type { SelectionConfig, SourceLogger } from "../policy-source/types.js";
import { KubernetesPolicySource } from "./source.js";

export { GROUP, KubernetesPolicySource, type KubernetesSourceOptions, PLURAL, VERSION } from "./source.js";

/**
 * A source on the cluster the agent runs in: the in-cluster service account when
 * KUBERNETES_SERVICE_HOST is set, otherwise `kubeconfigPath` or $KUBECONFIG / ~/.kube/config.
 */
export function createKubernetesPolicySource(
  config: SelectionConfig,
  logger: SourceLogger,
  kubeconfigPath?: string,
  snapshot?: { path: string; maxAgeMs: number },
): KubernetesPolicySource<CompiledPolicy> {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  return new KubernetesPolicySource<CompiledPolicy>({
    kubeConfig: kc,
    config,
    logger,
    ...(snapshot ? { snapshot } : {}),
  });
}
