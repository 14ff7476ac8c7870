// Status errors with gRPC codes, as carried in ttrpc Response.status (google.rpc.Status).

/** gRPC status codes (ttrpc reuses them verbatim). */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type CodeName = keyof typeof Code;
export type StatusCode = (typeof Code)[CodeName];

const NAMES: readonly string[] = Object.keys(Code);

/** "PERMISSION_DENIED" for 7; "CODE(99)" for values outside the table. */
export function codeName(code: number): string {
  return NAMES[code] ?? `CODE(${code})`;
}

/** An RPC that ended with a non-OK status: received from the peer, or thrown by a handler. */
export class TtrpcStatusError extends Error {
  readonly code: number;
  /** google.protobuf.Any details, passed through untouched. */
  readonly details: { typeUrl: string; value: Uint8Array }[];

  constructor(code: number, message: string, details: { typeUrl: string; value: Uint8Array }[] = []) {
    super(message);
    this.name = "TtrpcStatusError";
    // A status must carry an int32 code; anything else is a programming error → UNKNOWN.
    this.code = Number.isInteger(code) && code >= -0x80000000 && code <= 0x7fffffff ? code : Code.UNKNOWN;
    this.details = details;
  }

  /** Same shape as Go's status error string, which is what containerd logs. */
  override toString(): string {
    return `rpc error: code = ${codeName(this.code)} desc = ${this.message}`;
  }
}

/**
 * The byte stream itself broke the protocol (truncated frame, oversized mux frame, envelope
 * that does not decode on a connection that cannot recover). The connection is closed.
 */
export class TtrpcProtocolError extends TtrpcStatusError {
  constructor(message: string, code: number = Code.DATA_LOSS) {
    super(code, message);
    this.name = "TtrpcProtocolError";
  }
}

/** The error every pending or new call gets once a connection is gone. */
export function closedError(cause?: Error): TtrpcStatusError {
  const err = new TtrpcStatusError(
    Code.UNAVAILABLE,
    cause ? `ttrpc: closed: ${cause.message}` : "ttrpc: closed",
  );
  if (cause) (err as { cause?: unknown }).cause = cause;
  return err;
}

/** Map anything a handler threw to a status: status errors keep their code, the rest is UNKNOWN. */
export function toStatusError(err: unknown): TtrpcStatusError {
  if (err instanceof TtrpcStatusError) return err;
  if (err instanceof Error) return new TtrpcStatusError(Code.UNKNOWN, err.message);
  return new TtrpcStatusError(Code.UNKNOWN, String(err));
}
