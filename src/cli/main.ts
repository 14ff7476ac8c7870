// tollgate CLI entry (dist/tollgate.mjs). Minimal dispatcher: `tollgate agent [flags]`.
// The CLI engineer extends it (verify, doctor, policy validate).
const [cmd, ...rest] = process.argv.slice(2);

async function main(): Promise<number> {
  switch (cmd) {
    case "agent": {
      const { agentMain } = await import("../agent/main.js");
      return agentMain(rest);
    }
    case "install": {
      const { installMain } = await import("./install.js");
      const { VERSION } = await import("../agent/main.js");
      return installMain(rest, {
        stdout: (s) => process.stdout.write(s),
        stderr: (s) => process.stderr.write(s),
        version: VERSION,
      });
    }
    case "version":
    case "--version": {
      const { VERSION } = await import("../agent/main.js");
      process.stdout.write(`${VERSION}\n`);
      return 0;
    }
    default:
      process.stderr.write("usage: tollgate agent [--config FILE] [flags]\n");
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`tollgate: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
