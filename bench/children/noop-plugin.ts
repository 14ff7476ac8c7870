// A no-op NRI plugin (our NriPlugin, allow-all CreateContainer handler) for the
// CreateContainer benchmark: the floor any NRI plugin costs containerd on this machine.
// `node noop-plugin.mjs <nri socket>`; prints "registered" once containerd has registered it.
import { NriPlugin } from "../../src/nri-plugin/plugin.js";

const plugin = new NriPlugin(
  { name: "noop", index: "10", socketPath: process.argv[2]!, events: ["CreateContainer"], env: {} },
  {
    createContainer: () => undefined,
    onStateChange: (s) => {
      if (s === "registered") process.stdout.write("registered\n");
    },
  },
);
process.on("SIGTERM", () => {
  plugin.stop().finally(() => process.exit(0));
});
plugin.start().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
});
