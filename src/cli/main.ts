// tollgate CLI entry (dist/tollgate.mjs): one table of subcommands, each loaded on demand so
// `tollgate verify` does not start agent code and `tollgate --version` loads almost nothing.
import { errorMessage } from "../base/errors.js";
import pkg from "../../package.json";

type Main = (argv: string[]) => Promise<number>;

interface Command {
  summary: string;
  load: () => Promise<Main>;
}

// One entry per subcommand (keep it a flat table: other features add a line here).
const COMMANDS: Record<string, Command> = {
  agent: {
    summary: "run the node agent (NRI gate, local API, metrics)",
    load: async () => (await import("./agent.js")).agentCommand,
  },
  verify: {
    summary: "verify an image against a policy and print the verdict",
    load: async () => (await import("./verify.js")).verifyMain,
  },
  doctor: {
    summary: "check that enforcement is really on for this node",
    load: async () => (await import("./doctor.js")).doctorMain,
  },
  install: {
    summary: "install the pull verifier and the containerd drop-in on a node",
    load: async () => (await import("./install.js")).installCommand,
  },
  policy: {
    summary: "policy tools: validate ImagePolicy files, import notation / Ratify configuration",
    load: async () => (await import("./policy.js")).policyMain,
  },
};

export const VERSION: string = pkg.version;

function usage(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return [
    "Usage: tollgate COMMAND [flags]",
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(w)}  ${c.summary}`),
    "",
    "Flags:",
    "  --version  print the version",
    "  --help     show this help (also: tollgate COMMAND --help)",
    "",
    "Exit codes: 0 success/allowed, 1 denied/problems found/invalid, 2 usage or configuration",
    "error, 3 verification could not complete (verify). See docs/cli.md.",
    "",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === "--version" || cmd === "version") {
    process.stdout.write(`tollgate ${VERSION}\n`);
    return 0;
  }
  if (cmd === "--help" || cmd === "-h" || cmd === "help") {
    process.stdout.write(usage());
    return 0;
  }
  if (cmd === undefined) {
    process.stderr.write(usage());
    return 2;
  }
  const c = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!c) {
    process.stderr.write(`tollgate: unknown command "${cmd}"\nRun 'tollgate --help' for usage.\n`);
    return 2;
  }
  return (await c.load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // The agent returns only once stopped; other commands may leave idle keep-alive
    // sockets or timers behind, so end the process explicitly.
    process.exit(code);
  },
  (e: unknown) => {
    // Unexpected: the command could not complete (exit 3, as documented).
    process.stderr.write(`tollgate: ${errorMessage(e)}\n`);
    process.exit(3);
  },
);
