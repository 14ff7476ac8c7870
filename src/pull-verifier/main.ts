// Entry point of dist/tollgate-verify.mjs, the binary containerd's bindir verifier runs.
import { errorMessage } from "../base/errors.js";
import { run } from "./run.js";

run({
  argv: process.argv.slice(2),
  stdin: process.stdin,
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
}).then(
  (code) => {
    process.exitCode = code;
    // Do not wait for lingering handles (a background verification, keep-alive sockets).
    process.stdout.write("", () => process.exit(code));
  },
  (e: unknown) => {
    process.stdout.write(`tollgate: verifier crashed: ${errorMessage(e)}\n`, () =>
      process.exit(2),
    );
  },
);
