// Which containers the create-time gate has seen: every container it allowed, plus every
// container present at a Synchronize. On a (re)connect, a running container NOT in this set
// was created while the plugin was away (NRI is fail-open) — exactly what evictOnSync may
// stop. Containers that were gated and later became non-compliant (a policy change, an
// ended break-glass) are in the set and only reported: a policy edit must never stop a
// fleet on the next agent restart. Without any record (first start on a node) nothing
// counts as "created in the gap": containers that predate the agent are reported only.
//
// Persisted (nri.statePath, root-only, atomic) so that an agent restart is a gap too.
import { errorMessage } from "../base/errors.js";
import { lstatSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../policy-source/snapshot.js";

const MAX_IDS = 100_000;

export class SeenContainers {
  private ids = new Set<string>();
  private baseline = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly file: string,
    private readonly log: { warn(o: object, m?: string): void },
  ) {}

  /** Reads the persisted record, if any (a missing or unusable file means no baseline). */
  load(): void {
    if (this.file === "") return;
    try {
      const st = lstatSync(this.file);
      if (!st.isFile() || (st.mode & 0o077) !== 0) throw new Error("not a private regular file");
      const v = JSON.parse(readFileSync(this.file, "utf8")) as { containers?: unknown };
      if (!Array.isArray(v.containers) || v.containers.some((x) => typeof x !== "string"))
        throw new Error("malformed");
      this.ids = new Set(v.containers as string[]);
      this.baseline = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT")
        this.log.warn(
          { file: this.file, err: errorMessage(e) },
          "ignoring the record of seen containers",
        );
    }
  }

  /** True when "not seen" means "created while the plugin was away". */
  get hasBaseline(): boolean {
    return this.baseline;
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    if (!id || this.ids.has(id) || this.ids.size >= MAX_IDS) return;
    this.ids.add(id);
    this.schedule();
  }

  /** After a Synchronize: exactly the containers that exist now; from here on, a baseline. */
  replace(ids: Iterable<string>): void {
    this.ids = new Set([...ids].slice(0, MAX_IDS));
    this.baseline = true;
    this.flush();
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.file === "") return;
    try {
      writeFileAtomic(this.file, `${JSON.stringify({ containers: [...this.ids] })}\n`);
    } catch (e) {
      this.log.warn({ file: this.file, err: errorMessage(e) }, "could not record seen containers");
    }
  }

  private schedule(): void {
    if (this.timer || this.file === "") return;
    this.timer = setTimeout(() => this.flush(), 100);
    this.timer.unref();
  }
}
