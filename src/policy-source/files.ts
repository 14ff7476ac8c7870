// File-based policy source (standalone agent, tests, the pull verifier's offline fallback).
//
// A directory of YAML/JSON files, each holding one or more documents:
//   tollgate.dev/v1alpha1 ImagePolicy   – a policy (cluster-scoped, by metadata.name)
//   v1 Namespace                        – a namespace's annotations (policy, break-glass)
//   v1 ConfigMap / v1 Secret            – trust material the policies reference
// The files are the whole truth: a namespace without a Namespace document has no
// annotations (→ default policy).
//
// Hot reload: fs.watch on the directory (debounced) plus a periodic rescan, because
// fs.watch misses events on some filesystems and on ConfigMap volume symlink swaps.
// Only files whose bytes changed are re-parsed.
//
// Last good: a file that does not parse, breaks a cap, or holds a malformed document is
// rejected as a whole and its previous objects stay; a policy whose spec does not compile
// is rejected alone and its previous revision stays. Deleting a file or a policy is a
// valid change (namespaces naming a deleted policy then fail closed).

import { createHash } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { errorMessage } from "../base/errors.js";
import { EngineError } from "../engine/errors.js";
import type { CompiledPolicy, TrustMaterialRef, TrustMaterialResolver } from "../engine/policy/model.js";
import { type FileObject, parseFile } from "./file-documents.js";
import type { CompiledPolicyLike, PolicyCompiler } from "./model.js";
import { engineCompiler, refKey } from "./model.js";
import { stableJson } from "./objects.js";
import type { NamespaceMeta } from "./select.js";
import { PolicyStore } from "./store.js";
import { StoreBackedSource } from "./store-backed.js";
import { type PolicySource, type SelectionConfig, type SourceLogger, silentLogger } from "./types.js";

export interface FileSourceOptions<P extends CompiledPolicyLike> {
  dir: string;
  config: SelectionConfig;
  /** Defaults to the engine's compilePolicy. */
  compile?: PolicyCompiler<P>;
  logger?: SourceLogger;
  /** Quiet period after a change notification before rescanning (default 150 ms). */
  debounceMs?: number;
  /** Periodic full rescan (default 5000 ms; 0 disables). */
  rescanIntervalMs?: number;
  maxFileBytes?: number;
  maxFiles?: number;
  maxDocsPerFile?: number;
}

const DEFAULTS = {
  debounceMs: 150,
  rescanIntervalMs: 5000,
  maxFileBytes: 1 << 20,
  maxFiles: 1000,
  maxDocsPerFile: 200,
};
const FILE_RE = /\.(ya?ml|json)$/i;

interface FileState {
  hash: string;
  /** Objects of the last version of this file that parsed. */
  objects: FileObject[];
}

export class FilePolicySource<P extends CompiledPolicyLike = CompiledPolicy>
  extends StoreBackedSource<P>
  implements PolicySource<P>
{
  protected readonly unknownNamespace = "empty" as const;
  private readonly opts: Required<Omit<FileSourceOptions<P>, "logger" | "compile">>;
  private readonly log: SourceLogger;
  protected readonly store: PolicyStore<P>;
  private readonly files = new Map<string, FileState>();
  /** Applied view: policy docs and trust material currently fed to the store. */
  private appliedPolicies = new Map<string, string>();
  private trust = new Map<string, { data: Map<string, Uint8Array>; hash: string }>();
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private interval: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescanRequested = false;
  private stopped = false;

  constructor(options: FileSourceOptions<P>) {
    super();
    this.opts = { ...DEFAULTS, ...options } as Required<Omit<FileSourceOptions<P>, "logger" | "compile">>;
    this.log = options.logger ?? silentLogger;
    this.store = new PolicyStore<P>(
      "files",
      options.config,
      options.compile ?? (engineCompiler as unknown as PolicyCompiler<P>),
      this.log,
    );
  }

  async start(): Promise<void> {
    this.stopped = false;
    const st = await stat(this.opts.dir).catch(() => undefined);
    if (!st?.isDirectory()) {
      throw new EngineError(
        "INVALID_CONFIG",
        `policy directory ${this.opts.dir} does not exist or is not a directory`,
      );
    }
    await this.rescan();
    this.store.ready = true;
    this.store.syncState = "synced";
    this.store.emit();
    try {
      this.watcher = watch(this.opts.dir, { persistent: false }, () => this.schedule());
      this.watcher.on("error", (e) => {
        this.log.warn(
          { dir: this.opts.dir, err: errorMessage(e) },
          "policy directory watch failed; periodic rescan continues",
        );
      });
    } catch (e) {
      this.log.warn(
        { dir: this.opts.dir, err: errorMessage(e) },
        "cannot watch policy directory; periodic rescan only",
      );
    }
    if (this.opts.rescanIntervalMs > 0) {
      this.interval = setInterval(() => this.schedule(0), this.opts.rescanIntervalMs);
      this.interval.unref();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.interval) clearInterval(this.interval);
    await this.scanning;
    await this.store.settle();
    this.store.syncState = "stopped";
  }

  /** Rescans now and resolves when the result is in force (used by the CLI and tests). */
  async reload(): Promise<void> {
    await this.rescan();
  }

  private schedule(delay = this.opts.debounceMs): void {
    if (this.stopped) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.rescan().catch((e) => this.log.error({ err: errorMessage(e) }, "policy rescan failed"));
    }, delay);
    this.debounce.unref();
  }

  /** One scan at a time; a request during a scan runs one more scan after it. */
  private async rescan(): Promise<void> {
    if (this.scanning) {
      this.rescanRequested = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      do {
        this.rescanRequested = false;
        await this.scanOnce();
      } while (this.rescanRequested && !this.stopped);
    })();
    try {
      await this.scanning;
    } finally {
      this.scanning = undefined;
    }
  }

  private async scanOnce(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.opts.dir)).filter((n) => !n.startsWith(".") && FILE_RE.test(n)).sort();
    } catch (e) {
      // The directory vanished or is unreadable: keep everything in force, say so.
      this.store.lastError = {
        message: `cannot read ${this.opts.dir}: ${errorMessage(e)}`,
        at: new Date().toISOString(),
      };
      this.log.warn(
        { dir: this.opts.dir, err: errorMessage(e) },
        "policy directory unreadable; keeping last good state",
      );
      return;
    }
    if (names.length > this.opts.maxFiles) {
      this.store.reject(
        undefined,
        this.opts.dir,
        `more than ${this.opts.maxFiles} policy files; only the first are read`,
      );
      names = names.slice(0, this.opts.maxFiles);
    }
    const seen = new Set<string>();
    for (const name of names) {
      const file = path.join(this.opts.dir, name);
      seen.add(file);
      await this.readOne(file);
    }
    for (const file of [...this.files.keys()]) if (!seen.has(file)) this.files.delete(file);
    await this.apply();
    this.store.lastSyncAt = new Date().toISOString();
  }

  private async readOne(file: string): Promise<void> {
    let bytes: Buffer;
    let marker = "";
    try {
      const st = await stat(file);
      if (!st.isFile()) return;
      // Identifies an unreadable/oversized version so it is reported once, not every rescan.
      marker = `unread:${st.size}:${st.mtimeMs}`;
      if (st.size > this.opts.maxFileBytes)
        throw new Error(`file is larger than ${this.opts.maxFileBytes} bytes`);
      bytes = await readFile(file);
      if (bytes.length > this.opts.maxFileBytes)
        throw new Error(`file is larger than ${this.opts.maxFileBytes} bytes`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return; // removed between readdir and read
      const prev = this.files.get(file);
      if (marker !== "" && prev?.hash === marker) return;
      this.rejectFile(file, errorMessage(e));
      if (marker !== "") this.files.set(file, { hash: marker, objects: prev?.objects ?? [] });
      return;
    }
    const hash = createHash("sha256").update(bytes).digest("hex");
    if (this.files.get(file)?.hash === hash) return;
    try {
      const objects = parseFile(bytes.toString("utf8"), this.opts.maxDocsPerFile);
      this.files.set(file, { hash, objects });
    } catch (e) {
      this.rejectFile(file, errorMessage(e));
      // Remember the bad hash so the same bad bytes are not re-reported every rescan, but
      // keep the last good objects.
      const prev = this.files.get(file);
      this.files.set(file, { hash, objects: prev?.objects ?? [] });
    }
  }

  private rejectFile(file: string, reason: string): void {
    const prev = this.files.get(file);
    const policies = (prev?.objects ?? []).filter((o) => o.kind === "ImagePolicy").map((o) => o.name);
    if (policies.length === 0) this.store.reject(undefined, file, reason);
    for (const p of policies) this.store.reject(p, file, reason);
  }

  /** Merges every file's last good objects and feeds the differences to the store. */
  private async apply(): Promise<void> {
    const policies = new Map<string, { doc: Record<string, unknown>; origin: string }>();
    const namespaces = new Map<string, NamespaceMeta>();
    const trust = new Map<string, { data: Map<string, Uint8Array>; hash: string }>();
    for (const [file, st] of this.files) {
      for (const o of st.objects) {
        if (o.kind === "ImagePolicy") {
          const other = policies.get(o.name);
          if (other)
            this.store.reject(
              o.name,
              file,
              `ImagePolicy ${o.name} is also defined in ${other.origin}; ignored here`,
            );
          else policies.set(o.name, { doc: o.doc, origin: file });
        } else if (o.kind === "Namespace") {
          if (namespaces.has(o.name))
            this.store.reject(undefined, file, `Namespace ${o.name} is defined twice; ignored here`);
          else namespaces.set(o.name, { name: o.name, annotations: o.annotations });
        } else {
          const key = refKey(o);
          if (trust.has(key)) this.store.reject(undefined, file, `${key} is defined twice; ignored here`);
          else trust.set(key, { data: o.data, hash: o.hash });
        }
      }
    }

    const changedTrust = new Set<string>();
    for (const k of new Set([...trust.keys(), ...this.trust.keys()])) {
      if (trust.get(k)?.hash !== this.trust.get(k)?.hash) changedTrust.add(k);
    }
    this.trust = trust;
    this.store.replaceNamespaces([...namespaces.values()]);

    const work: Promise<unknown>[] = [];
    const next = new Map<string, string>();
    for (const [name, { doc, origin }] of policies) {
      const key = stableJson(doc);
      next.set(name, key);
      if (this.appliedPolicies.get(name) !== key)
        work.push(this.store.upsert(name, doc, origin, this.resolver));
    }
    for (const name of this.appliedPolicies.keys()) {
      if (!policies.has(name)) this.store.remove(name, "files");
    }
    const changedDocs = new Set(
      [...next].filter(([n, k]) => this.appliedPolicies.get(n) !== k).map(([n]) => n),
    );
    this.appliedPolicies = next;
    await Promise.all(work);
    // Trust material changed under a policy whose document did not: recompile it.
    if (changedTrust.size > 0) {
      const names = this.store.dependentsOf(changedTrust).filter((n) => !changedDocs.has(n) && next.has(n));
      await this.store.recompile(names, this.resolver);
    }
  }

  private readonly resolver: TrustMaterialResolver = {
    resolve: async (ref: TrustMaterialRef): Promise<Uint8Array> => {
      const obj = this.trust.get(refKey(ref));
      if (!obj)
        throw new EngineError(
          "NOT_FOUND",
          `${ref.kind} ${ref.namespace}/${ref.name} is not defined in ${this.opts.dir}`,
        );
      const v = obj.data.get(ref.key);
      if (!v)
        throw new EngineError(
          "NOT_FOUND",
          `${ref.kind} ${ref.namespace}/${ref.name} has no key "${ref.key}"`,
        );
      return v;
    },
  };
}
