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

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    const buf = this.buf;
    if (this.pos >= this.end) throw new Error("premature EOF");
    let b = buf[this.pos++]!;
    if (b < 0x80) return b; // tags and most lengths: one byte
    let result = b & 0x7f;
    let mul = 0x80;
    for (let i = 1; i < 10; i++) {
      if (this.pos >= this.end) throw new Error("premature EOF");
      b = buf[this.pos++]!;
      // Tags and lengths are uint32 (as the generated decoder reads them): higher bits drop.
      if (i < 5) result += (b & 0x7f) * mul;
      mul *= 0x80;
      if (b < 0x80) return result >>> 0; // as uint32: the low 32 bits
    }
    throw new Error("invalid varint");
  }

  /** Start of a length-delimited field's bytes; the end is `this.pos` afterwards. */
  bytes(): number {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) throw new Error("premature EOF");
    this.pos = start + len;
    return start;
  }

  string(): string {
    const start = this.bytes();
    return this.buf.toString("utf8", start, this.pos);
  }

  /** A sub-message's bytes as a reader of their own. */
  sub(): Reader {
    const start = this.bytes();
    return new Reader(this.buf, start, this.pos);
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

// Each message: read tags until the end (or an end-group tag / tag 0, as the generated
// decoder stops); a field we keep is read only with its expected wire type (LEN).

/** A map<string,string> entry (key = 1, value = 2) into `into`. */
function mapEntry(r: Reader, into: Record<string, string>): void {
  const e = r.sub();
  let key = "";
  let value = "";
  while (!e.done) {
    const tag = e.varint();
    if ((tag & 7) === EGROUP || tag === 0) break;
    if (tag === ((1 << 3) | LEN)) key = e.string();
    else if (tag === ((2 << 3) | LEN)) value = e.string();
    else e.skip(tag & 7);
  }
  into[key] = value;
}

function pod(r: Reader): PodIdentity {
  const m = r.sub();
  const p: PodIdentity = { id: "", name: "", uid: "", namespace: "", labels: {}, annotations: {} };
  while (!m.done) {
    const tag = m.varint();
    if ((tag & 7) === EGROUP || tag === 0) break;
    switch (tag) {
      case (1 << 3) | LEN:
        p.id = m.string();
        break;
      case (2 << 3) | LEN:
        p.name = m.string();
        break;
      case (3 << 3) | LEN:
        p.uid = m.string();
        break;
      case (4 << 3) | LEN:
        p.namespace = m.string();
        break;
      case (5 << 3) | LEN:
        mapEntry(m, p.labels);
        break;
      case (6 << 3) | LEN:
        mapEntry(m, p.annotations);
        break;
      default:
        m.skip(tag & 7);
    }
  }
  return p;
}

function container(r: Reader): ContainerIdentity {
  const m = r.sub();
  const c: ContainerIdentity = { id: "", podSandboxId: "", name: "", labels: {}, annotations: {} };
  while (!m.done) {
    const tag = m.varint();
    if ((tag & 7) === EGROUP || tag === 0) break;
    switch (tag) {
      case (1 << 3) | LEN:
        c.id = m.string();
        break;
      case (2 << 3) | LEN:
        c.podSandboxId = m.string();
        break;
      case (3 << 3) | LEN:
        c.name = m.string();
        break;
      case (5 << 3) | LEN:
        mapEntry(m, c.labels);
        break;
      case (6 << 3) | LEN:
        mapEntry(m, c.annotations);
        break;
      default:
        m.skip(tag & 7);
    }
  }
  return c;
}

/** CreateContainerRequest { pod = 1; container = 2 }, identity fields only. */
export function decodeCreateContainerIdentity(input: Uint8Array): CreateContainerIdentity {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const r = new Reader(buf, 0, buf.length);
  const out: CreateContainerIdentity = { pod: undefined, container: undefined };
  while (!r.done) {
    const tag = r.varint();
    if ((tag & 7) === EGROUP || tag === 0) break;
    // A repeated occurrence replaces the earlier one, as in the generated decoder.
    if (tag === ((1 << 3) | LEN)) out.pod = pod(r);
    else if (tag === ((2 << 3) | LEN)) out.container = container(r);
    else r.skip(tag & 7);
  }
  return out;
}

/** The ttrpc request codec for CreateContainer served with identity-only decoding. */
export const CreateContainerIdentityCodec: MessageCodec<CreateContainerIdentity> = {
  decode: decodeCreateContainerIdentity,
  encode() {
    throw new Error("CreateContainerIdentity is decode-only (the plugin never sends it)");
  },
};
