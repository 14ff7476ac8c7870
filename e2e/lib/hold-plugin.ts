// A second NRI plugin for the tag-move race test, built on our own NRI/ttrpc code. Registered
// with an index below the agent's, containerd calls it first for every CreateContainer; when
// armed for a namespace it holds that namespace's next create until the test releases it.
// While it holds, containerd has already prepared the container's rootfs snapshot (from the
// image kubelet resolved) and the agent has not been asked yet: the race window, made wide
// and deterministic.
import { NriPlugin } from "../../src/nri-plugin/index.js";

export interface Held {
  containerId: string;
  imageName: string | undefined;
}

export class HoldPlugin {
  private readonly plugin: NriPlugin;
  private armed: { namespace: string; onHeld: (h: Held) => void; release: Promise<void> } | undefined;

  constructor(socketPath: string, index = "05") {
    this.plugin = new NriPlugin(
      { name: "hold", index, events: ["CreateContainer"], socketPath },
      {
        createContainer: async (pod, container) => {
          const a = this.armed;
          if (a && pod.namespace === a.namespace) {
            this.armed = undefined;
            a.onHeld({
              containerId: container.id,
              imageName: container.annotations["io.kubernetes.cri.image-name"],
            });
            await a.release;
          }
          return {};
        },
      },
    );
  }

  start(): Promise<void> {
    return this.plugin.start();
  }

  stop(): Promise<void> {
    return this.plugin.stop();
  }

  /** Holds the next CreateContainer in `namespace`; `held` resolves when it arrives. */
  arm(namespace: string): { held: Promise<Held>; release: () => void } {
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const held = new Promise<Held>((resolve) => {
      this.armed = { namespace, onHeld: resolve, release: released };
    });
    return { held, release };
  }
}
