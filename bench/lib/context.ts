// What every benchmark module gets from bench/run.ts.
import type { Fixture } from "./fixtures.js";

export interface BenchContext {
  /** Lazily started shared registry fixture (signed images). */
  fixture(): Promise<Fixture>;
  /** Private scratch dir for this benchmark. */
  dir(name: string): string;
  /** The shipped pull verifier (dist/tollgate-verify.mjs + chunks), copied right after the build. */
  verifier: string;
  /** The self-contained verifier (dist/tollgate-verify from scripts/package-verifier.mjs), copied right after it was built; install it with lib/installed.ts. */
  sea: string;
  /** Bundled real agent entry (plain node). */
  agentEntry: string;
  /** Bundles a bench/children entry; returns the .mjs path. */
  child(entry: string): Promise<string>;
  log(msg: string): void;
  /** Fewer iterations (smoke run of the harness, not for publishing). */
  quick: boolean;
}

export function iterations(ctx: BenchContext, full: number, quick: number): number {
  return ctx.quick ? quick : full;
}
