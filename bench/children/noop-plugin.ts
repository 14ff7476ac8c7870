// A no-op NRI plugin (our NriPlugin, allow-all CreateContainer handler) for the
// CreateContainer benchmark: the floor any NRI plugin costs containerd on this machine.
// `node noop-plugin.mjs <nri socket>`; prints "registered" each time containerd has
// registered it. SIGUSR2 unregisters it (prints "unregistered") and, sent again, registers
// a new plugin in the same process: the benchmark takes it out of containerd's path between
// its blocks without losing what V8 optimized, as a node's long-running plugin keeps it.
import { NriPlugin } from "../../src/nri-plugin/plugin.js";
import { keepResident } from "../lib/resident.js";

const socketPath = process.argv[2]!;
const fail = (e: unknown) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
};
const startPlugin = () => {
  const p = new NriPlugin(
    { name: "noop", index: "10", socketPath, events: ["CreateContainer"], env: {} },
    {
      createContainer: () => undefined,
      onStateChange: (s) => {
        if (s === "registered") process.stdout.write("registered\n");
      },
    },
  );
  p.start().catch(fail);
  return p;
};
keepResident({
  first: startPlugin(),
  start: startPlugin,
  stopped: () => process.stdout.write("unregistered\n"),
  fail,
});
