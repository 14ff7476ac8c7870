// A small strict CBOR (RFC 8949) decoder for COSE_Sign1: definite lengths only, bounded
// depth, element counts and sizes, no duplicate map keys. Errors are EngineError("MALFORMED").
import { EngineError } from "../errors.js";

export type CborKey = number | string;
export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | undefined
  | Uint8Array
  | CborValue[]
  | CborMap
  | CborTag;
export type CborMap = Map<CborKey, CborValue>;
export interface CborTag {
  tag: number;
  value: CborValue;
}

export function isTag(v: CborValue): v is CborTag {
  return (
    typeof v === "object" &&
    v !== null &&
    !(v instanceof Uint8Array) &&
    !Array.isArray(v) &&
    !(v instanceof Map)
  );
}

export interface CborLimits {
  maxDepth: number;
  maxItems: number;
}

const DEFAULT_LIMITS: CborLimits = { maxDepth: 16, maxItems: 10_000 };

function bad(what: string): EngineError {
  return new EngineError("MALFORMED", `malformed CBOR: ${what}`);
}

class Reader {
  p = 0;
  items = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly limits: CborLimits,
  ) {}

  byte(): number {
    if (this.p >= this.buf.length) throw bad("unexpected end of data");
    return this.buf[this.p++]!;
  }

  bytes(n: number): Uint8Array {
    if (n > this.buf.length - this.p) throw bad("length exceeds the data");
    const out = this.buf.subarray(this.p, this.p + n);
    this.p += n;
    return out;
  }

  /** Reads the argument of an initial byte; returns a number or bigint (major 0/1 only). */
  arg(info: number): number | bigint {
    if (info < 24) return info;
    if (info === 24) return this.byte();
    if (info === 25) {
      const b = this.bytes(2);
      return (b[0]! << 8) | b[1]!;
    }
    if (info === 26) {
      const b = this.bytes(4);
      return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    }
    if (info === 27) {
      const b = this.bytes(8);
      let v = 0n;
      for (const x of b) v = (v << 8n) | BigInt(x);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    if (info === 31) throw bad("indefinite lengths are not supported");
    throw bad(`reserved additional information ${info}`);
  }

  len(info: number): number {
    const v = this.arg(info);
    if (typeof v !== "number" || v > this.buf.length - this.p) throw bad("length exceeds the data");
    return v;
  }

  value(depth: number): CborValue {
    if (depth > this.limits.maxDepth) throw bad("nesting too deep");
    if (++this.items > this.limits.maxItems) throw bad("too many items");
    const ib = this.byte();
    const major = ib >> 5;
    const info = ib & 0x1f;
    switch (major) {
      case 0:
        return this.arg(info);
      case 1: {
        const v = this.arg(info);
        return typeof v === "number" && v < Number.MAX_SAFE_INTEGER ? -1 - v : -1n - BigInt(v);
      }
      case 2:
        return this.bytes(this.len(info));
      case 3: {
        const b = this.bytes(this.len(info));
        try {
          return new TextDecoder("utf-8", { fatal: true }).decode(b);
        } catch {
          throw bad("invalid UTF-8 in text string");
        }
      }
      case 4: {
        const n = this.len(info);
        const out: CborValue[] = [];
        for (let i = 0; i < n; i++) out.push(this.value(depth + 1));
        return out;
      }
      case 5: {
        const n = this.len(info);
        const out: CborMap = new Map();
        for (let i = 0; i < n; i++) {
          const k = this.value(depth + 1);
          if (typeof k !== "number" && typeof k !== "string") throw bad("map keys must be integers or text");
          if (out.has(k)) throw bad(`duplicate map key ${JSON.stringify(k)}`);
          out.set(k, this.value(depth + 1));
        }
        return out;
      }
      case 6: {
        const t = this.arg(info);
        if (typeof t !== "number") throw bad("tag number too large");
        return { tag: t, value: this.value(depth + 1) };
      }
      default:
        return this.simple(info);
    }
  }

  simple(info: number): CborValue {
    switch (info) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 23:
        return undefined;
      case 25: {
        const b = this.bytes(2);
        return halfToNumber((b[0]! << 8) | b[1]!);
      }
      case 26:
        return Buffer.from(this.bytes(4)).readFloatBE(0);
      case 27:
        return Buffer.from(this.bytes(8)).readDoubleBE(0);
      default:
        throw bad(`unsupported simple value ${info}`);
    }
  }
}

function halfToNumber(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Decodes exactly one CBOR item; trailing bytes are an error. */
export function decodeCbor(buf: Uint8Array, limits: Partial<CborLimits> = {}): CborValue {
  const r = new Reader(buf, { ...DEFAULT_LIMITS, ...limits });
  const v = r.value(0);
  if (r.p !== buf.length) throw bad("trailing data after the CBOR item");
  return v;
}

// --- minimal encoder for the COSE Sig_structure --------------------------------------

function head(major: number, n: number): Uint8Array {
  if (n < 24) return Uint8Array.of((major << 5) | n);
  if (n < 0x100) return Uint8Array.of((major << 5) | 24, n);
  if (n < 0x10000) return Uint8Array.of((major << 5) | 25, n >> 8, n & 0xff);
  return Uint8Array.of((major << 5) | 26, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

export function encodeBytes(b: Uint8Array): Uint8Array {
  return Buffer.concat([head(2, b.length), b]);
}

export function encodeText(s: string): Uint8Array {
  const b = Buffer.from(s, "utf8");
  return Buffer.concat([head(3, b.length), b]);
}

export function encodeArrayHead(n: number): Uint8Array {
  return head(4, n);
}
