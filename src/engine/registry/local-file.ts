// The registry layer's local configuration files (Docker config.json, hosts.toml): read with
// a size cap that holds while reading (never more than max + 1 bytes), errors typed.
import { errorMessage } from "../../base/errors.js";
import { closeSync, openSync, readSync } from "node:fs";
import { EngineError } from "../errors.js";

/** The file's text, or undefined when it does not exist. Larger than `max` or unreadable → INVALID_CONFIG. */
export function readLocalConfig(file: string, max: number): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new EngineError("INVALID_CONFIG", `cannot read ${file}: ${errorMessage(e)}`, { cause: e });
  }
  try {
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
    }
    if (n > max) throw new EngineError("INVALID_CONFIG", `${file} is larger than ${max} bytes`);
    return buf.toString("utf8", 0, n);
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError("INVALID_CONFIG", `cannot read ${file}: ${errorMessage(e)}`, { cause: e });
  } finally {
    closeSync(fd);
  }
}
