// Fuzzing the NRI transport as containerd's side of the socket would hit it: random and
// half-valid ttrpc frames into a ttrpc server serving the real NRI Runtime/Plugin-style
// handlers, and random trunk bytes into the NRI multiplexer with a ttrpc server and client
// on its logical connections. 10,000 cases each: every stream is answered with well-formed
// Response frames or closed with a typed TtrpcStatusError — no exception escapes, no hang.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RuntimeDefinition } from "../../src/gen/nri.js";
import { Response } from "../../src/gen/ttrpc.js";
import { Mux } from "../../src/nri-plugin/mux.js";
import { TtrpcClient } from "../../src/nri-plugin/ttrpc/client.js";
import { FrameDecoder } from "../../src/nri-plugin/ttrpc/frame.js";
import { TtrpcServer } from "../../src/nri-plugin/ttrpc/server.js";
import { TtrpcStatusError } from "../../src/nri-plugin/ttrpc/status.js";
import { splits, ttrpcFrameArb, ttrpcStreamArb } from "../nri-plugin/support/arbitraries.js";
import { duplexPair } from "../nri-plugin/support/duplex.js";
import { fuzzedTtrpcServer } from "../nri-plugin/support/fuzz-server.js";
import { fuzzClass } from "./fuzz-kit.js";

const FILE = "test/reliability/fuzz-transport.test.ts";

const frameArb = ttrpcFrameArb({
  services: [RuntimeDefinition.fullName, "test.Echo", "", "nri.pkg.api.v1alpha1.Plugin"],
  methods: ["RegisterPlugin", "UpdateContainers", "Echo", "", "CreateContainer"],
  maxPayload: 64,
  maxNoise: 24,
  oddIds: 20,
  types: [1, 1, 1, 2, 3, 0, 7],
  timeoutsNano: [0, 1, 2e9],
  metadata: [{ key: "containerd-namespace-ttrpc", value: "k8s.io" }],
});
const streamArb = ttrpcStreamArb(frameArb, 6);

const tick = () => new Promise((r) => setImmediate(r));

/** Resolves with the value, or rejects if the stream does not settle in `ms` (a hang). */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`hang: ${what} did not settle in ${ms} ms`)), ms);
    }),
  ]);
}

const typedTtrpc = (e: unknown) => (e instanceof TtrpcStatusError ? `ttrpc code ${e.code}` : undefined);

describe("fuzz: NRI transport", () => {
  it("ttrpc frames into a ttrpc server", async () => {
    await fuzzClass({
      name: "ttrpc frames",
      path: "TtrpcServer (Runtime service + raw echo) over an in-memory stream",
      file: FILE,
      typed: typedTtrpc,
      valueWord: "streams answered with well-formed Response frames",
      arb: fc.tuple(streamArb, fc.array(fc.nat(), { maxLength: 3 })),
      async run([bytes, cuts]) {
        const { peer, replies, closed } = fuzzedTtrpcServer();
        for (const c of splits(bytes, cuts)) peer.write(c);
        await tick();
        await tick();
        peer.end();
        const err = await bounded(closed, 5000, "ttrpc server");
        const dec = new FrameDecoder({
          frame: (_i, t, _f, p) => {
            expect(t).toBe(2);
            Response.decode(p);
          },
          oversized: () => expect.unreachable("server sent an oversized frame"),
        });
        for (const r of replies) dec.push(r);
        expect(dec.end()).toBeUndefined();
        if (err) throw err;
      },
    });
  });

  it("NRI multiplexer trunk bytes", async () => {
    const muxFrame = fc
      .record({
        id: fc.constantFrom(0, 1, 2, 3, 0xffffffff),
        body: fc.oneof(
          streamArb,
          fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
        ),
        lie: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -3, max: 3 }), fc.constant(5 << 20)),
      })
      .map((r) => {
        const h = Buffer.alloc(8);
        h.writeUInt32BE(r.id, 0);
        h.writeUInt32BE(Math.max(0, r.body.length + r.lie), 4);
        return Buffer.concat([h, r.body]);
      });
    await fuzzClass({
      name: "NRI multiplexer",
      path: "Mux trunk → ttrpc server (conn 1) + ttrpc client (conn 2) over an in-memory stream",
      file: FILE,
      typed: typedTtrpc,
      valueWord: "trunks routed/dropped and ended cleanly",
      arb: fc.tuple(fc.array(muxFrame, { maxLength: 5 }), fc.array(fc.nat(), { maxLength: 3 })),
      async run([fs, cuts]) {
        const [peer, mine] = duplexPair();
        let callSettled: Promise<unknown> = Promise.resolve();
        const closed = new Promise<Error | undefined>((resolve) => {
          const mux = new Mux(mine, { onClose: resolve });
          new TtrpcServer().registerRaw("test.Echo", "Echo", (p) => p).serve(mux.open(1));
          callSettled = new TtrpcClient(mux.open(2)).call("a.B", "C", Buffer.alloc(0)).then(
            () => undefined,
            (e) => {
              if (!(e instanceof TtrpcStatusError)) throw e;
            },
          );
        });
        peer.on("data", () => {});
        for (const c of splits(Buffer.concat(fs), cuts)) peer.write(c);
        peer.end();
        const err = await bounded(closed, 5000, "mux");
        await bounded(callSettled, 5000, "client call on conn 2");
        if (err) throw err;
      },
    });
  });
});
