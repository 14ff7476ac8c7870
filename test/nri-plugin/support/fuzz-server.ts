// The ttrpc server both fuzz suites feed random bytes (test/nri-plugin/fuzz.test.ts,
// test/reliability/fuzz-transport.test.ts): a raw echo method and the Runtime service, served
// on one end of an in-memory pair. The caller writes to `peer`, ends it, and reads `replies`
// once `closed` resolves (with the error the server closed the connection with, if any).
import type { Duplex } from "node:stream";
import { RuntimeDefinition } from "../../../src/gen/nri.js";
import { TtrpcServer } from "../../../src/nri-plugin/ttrpc/server.js";
import { duplexPair } from "./duplex.js";

export function fuzzedTtrpcServer(): { peer: Duplex; replies: Buffer[]; closed: Promise<Error | undefined> } {
  const [peer, mine] = duplexPair();
  const closed = new Promise<Error | undefined>((resolve) => {
    new TtrpcServer({ onConnectionClose: (_c, e) => resolve(e) })
      .registerRaw("test.Echo", "Echo", (p) => p)
      .register(RuntimeDefinition, {
        registerPlugin: () => ({}),
        updateContainers: () => ({ failed: [] }),
      })
      .serve(mine);
  });
  const replies: Buffer[] = [];
  peer.on("data", (c: Buffer) => replies.push(c));
  return { peer, replies, closed };
}
