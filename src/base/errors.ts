// The typed error every layer builds on: a stable code (for exit codes, metrics, tests and
// the failure policy) and one human sentence as the message.

export class TollgateError<Code extends string = string> extends Error {
  readonly code: Code;

  constructor(code: Code, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
  }

  toJSON(): { code: Code; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Bad command-line input: the commands answer it with their usage exit status. */
export class UsageError extends TollgateError<"USAGE"> {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super("USAGE", message, opts);
  }
}

/** The message of anything thrown: an Error's message, else the value as a string. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
