// A pre-launched NRI plugin for e2e/nri.test.ts. containerd starts it from plugin_path with only
// NRI_PLUGIN_{NAME,IDX,SOCKET} in its environment (protocols.md §2.1); it records what it sees
// as JSON lines in the file named by argv[2]. Bundled with esbuild by the test.
import { appendFileSync } from "node:fs";
import { ContainerAdjustment } from "../../src/gen/nri.js";
import { NriPlugin } from "../../src/nri-plugin/index.js";

const out = process.argv[2];
if (!out) throw new Error("usage: prelaunched-plugin <events.jsonl>");
const record = (o: object) => appendFileSync(out, `${JSON.stringify({ pid: process.pid, ...o })}\n`);

record({
  kind: "started",
  env: {
    name: process.env.NRI_PLUGIN_NAME,
    idx: process.env.NRI_PLUGIN_IDX,
    socket: process.env.NRI_PLUGIN_SOCKET,
    path: process.env.PATH ?? null,
  },
});

const plugin = new NriPlugin(
  // Name and index are containerd's (env); these are only fallbacks.
  { name: "prelaunched", index: "99", events: ["CreateContainer"] },
  {
    configure: (info) =>
      record({ kind: "configure", config: info.config, requestTimeoutMs: info.requestTimeoutMs }),
    synchronize: (pods, containers) => {
      record({ kind: "synchronize", pods: pods.length, containers: containers.length });
      return [];
    },
    createContainer: (pod, container) => {
      record({
        kind: "create",
        namespace: pod.namespace,
        pod: pod.name,
        container: container.name,
        image: container.annotations["io.kubernetes.cri.image-name"],
      });
      return {
        adjust: ContainerAdjustment.fromPartial({ annotations: { "tollgate.test/prelaunched": "seen" } }),
      };
    },
    onStateChange: (state, detail) => record({ kind: "state", state, detail }),
  },
);

plugin.start().catch((err: unknown) => record({ kind: "error", message: String(err) }));
plugin.wait().then(() => {
  record({ kind: "exit" });
  process.exit(0);
});
