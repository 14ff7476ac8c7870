// The setup every signed-image integration test starts from: a loopback docker-registry, a
// notation test certificate and a cosign key pair, all under one private temp dir that
// stop() removes (the registry's blobs and the keys included).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type LocalRegistry, startRegistry } from "./registry.js";
import { type CosignKeys, cosignGenerateKeyPair, type NotationConfig, notationInit } from "./signing.js";

export interface SigningFixture {
  /** Private temp dir; put anything else the test writes here too. */
  work: string;
  reg: LocalRegistry;
  notation: NotationConfig;
  keys: CosignKeys;
  stop(): Promise<void>;
}

export async function startSigningFixture(opts: { notationKey?: string } = {}): Promise<SigningFixture> {
  const work = mkdtempSync(path.join(os.tmpdir(), "tollgate-signing-"));
  const remove = () => rmSync(work, { recursive: true, force: true });
  let reg: LocalRegistry | undefined;
  try {
    reg = await startRegistry(path.join(work, "registry"));
    const notationDir = path.join(work, "notation");
    mkdirSync(notationDir);
    const [notation, keys] = await Promise.all([
      notationInit({ configDir: notationDir, ...(opts.notationKey ? { keyName: opts.notationKey } : {}) }),
      cosignGenerateKeyPair(path.join(work, "cosign")),
    ]);
    const r = reg;
    return {
      work,
      reg: r,
      notation,
      keys,
      stop: async () => {
        await r.stop();
        remove();
      },
    };
  } catch (e) {
    await reg?.stop();
    remove();
    throw e;
  }
}
