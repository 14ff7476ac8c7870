// CreateContainer requests decoded for identity only. containerd sends the whole pod and
// container (env, mounts, hooks, Linux resources…) on every create; a gate reads a handful
// of fields. Decoding everything was about half of the plugin's CPU per create (bench/:
// NRI round trip), so this reader takes ids, names, namespace, labels and annotations and
// skips the rest by length. Wire rules as the generated decoder (ts-proto): a field with an
// unexpected wire type is skipped, the last occurrence of a scalar or map key wins.
import type { Container, PodSandbox } from "../gen/nri.js";
import type { MessageCodec } from "./ttrpc/types.js";

/** The pod as a CreateContainer handler sees it. */
export type PodIdentity = Pick<PodSandbox, "id" | "name" | "uid" | "namespace" | "labels" | "annotations">;
/** The container as a CreateContainer handler sees it (no spec: env, mounts, hooks, Linux). */
export type ContainerIdentity = Pick<Container, "id" | "podSandboxId" | "name" | "labels" | "annotations">;

export interface CreateContainerIdentity {
  pod: PodIdentity | undefined;
  container: ContainerIdentity | undefined;
}

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const SGROUP = 3;
const EGROUP = 4;
const I32 = 5;

class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new Error("premature EOF");
      const b = this.buf[this.pos++]!;
      // Tags and lengths are uint32 (as the generated decoder reads them): higher bits drop.
      if (shift < 32) result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result >>> 0; // as uint32: the low 32 bits
      shift += 7;
      if (shift >= 70) throw new Error("invalid varint");
    }
  }

  /** [start, end) of a length-delimited field's bytes. */
  bytes(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) throw new Error("premature EOF");
    this.pos = start + len;
    return [start, start + len];
  }

  string(): string {
    const [s, e] = this.bytes();
    return this.buf.toString("utf8", s, e);
  }

  skip(wireType: number, depth = 0): void {
    switch (wireType) {
      case VARINT:
        this.varint();
        return;
      case I64:
        this.advance(8);
        return;
      case LEN:
        this.bytes();
        return;
      case I32:
        this.advance(4);
        return;
      case SGROUP: {
        if (depth > 64) throw new Error("groups nested too deeply");
        for (;;) {
          const tag = this.varint();
          if ((tag & 7) === EGROUP) return;
          this.skip(tag & 7, depth + 1);
        }
      }
      default:
        throw new Error(`invalid wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (n > this.end - this.pos) throw new Error("premature EOF");
    this.pos += n;
  }
}

/** Fields of one message: `read(field, wireType, r)` returns false for fields it skips. */
function fields(r: Reader, read: (field: number, wireType: number) => boolean): void {
  while (r.pos < r.end) {
    const tag = r.varint();
    const wireType = tag & 7;
    if (wireType === EGROUP || tag === 0) return;
    if (!read(tag >>> 3, wireType)) r.skip(wireType);
  }
}

/** A map<string,string> entry (key = 1, value = 2) into `into`. */
function mapEntry(r: Reader, into: Record<string, string>): void {
  const [s, e] = r.bytes();
  const sub = new Reader(r.buf, s, e);
  let key = "";
  let value = "";
  fields(sub, (f, w) => {
    if (w !== LEN) return false;
    if (f === 1) key = sub.string();
    else if (f === 2) value = sub.string();
    else return false;
    return true;
  });
  into[key] = value;
}

function pod(r: Reader): PodIdentity {
  const [s, e] = r.bytes();
  const sub = new Reader(r.buf, s, e);
  const p: PodIdentity = { id: "", name: "", uid: "", namespace: "", labels: {}, annotations: {} };
  fields(sub, (f, w) => {
    if (w !== LEN) return false;
    if (f === 1) p.id = sub.string();
    else if (f === 2) p.name = sub.string();
    else if (f === 3) p.uid = sub.string();
    else if (f === 4) p.namespace = sub.string();
    else if (f === 5) mapEntry(sub, p.labels);
    else if (f === 6) mapEntry(sub, p.annotations);
    else return false;
    return true;
  });
  return p;
}

function container(r: Reader): ContainerIdentity {
  const [s, e] = r.bytes();
  const sub = new Reader(r.buf, s, e);
  const c: ContainerIdentity = { id: "", podSandboxId: "", name: "", labels: {}, annotations: {} };
  fields(sub, (f, w) => {
    if (w !== LEN) return false;
    if (f === 1) c.id = sub.string();
    else if (f === 2) c.podSandboxId = sub.string();
    else if (f === 3) c.name = sub.string();
    else if (f === 5) mapEntry(sub, c.labels);
    else if (f === 6) mapEntry(sub, c.annotations);
    else return false;
    return true;
  });
  return c;
}

/** CreateContainerRequest { pod = 1; container = 2 }, identity fields only. */
export function decodeCreateContainerIdentity(input: Uint8Array): CreateContainerIdentity {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const r = new Reader(buf, 0, buf.length);
  const out: CreateContainerIdentity = { pod: undefined, container: undefined };
  fields(r, (f, w) => {
    if (w !== LEN) return false;
    // A repeated occurrence replaces the earlier one, as in the generated decoder.
    if (f === 1) out.pod = pod(r);
    else if (f === 2) out.container = container(r);
    else return false;
    return true;
  });
  return out;
}

/** The ttrpc request codec for CreateContainer served with identity-only decoding. */
export const CreateContainerIdentityCodec: MessageCodec<CreateContainerIdentity> = {
  decode: decodeCreateContainerIdentity,
  encode() {
    throw new Error("CreateContainerIdentity is decode-only (the plugin never sends it)");
  },
};
