// Run by plugin.test.ts the way containerd launches a pre-launched plugin: fd 3 is one end of
// a socketpair and only NRI_PLUGIN_{SOCKET,NAME,IDX} are in the environment.
import { Code, NriPlugin, TtrpcStatusError } from "../../../src/nri-plugin/index.js";

const p = new NriPlugin(
  { name: "overridden-by-env", index: "99", events: ["CreateContainer"] },
  {
    createContainer: (_pod, c) => {
      if (c.name === "deny")
        throw new TtrpcStatusError(Code.PERMISSION_DENIED, "denied by pre-launched test plugin");
      return { adjust: { annotations: { prelaunched: "yes" } } };
    },
    onStateChange: (s) => process.stdout.write(`${s}\n`),
  },
);
await p.start();
await p.wait();
process.stdout.write(`stopped: ${p.state}\n`);
process.exit(0);
