/**
 * Typed errors. Every error Visor raises on purpose is a VisorError with a stable `code`, the
 * offending `field` where there is one, a sentence and a `hint`. Only the daemon maps a kind to
 * an HTTP status; only the CLI turns one into an exit code.
 */

/** Whose fault it is — decides the HTTP status and the CLI's exit code. */
export type ErrorKind =
  | 'invalid' //      the caller's input is wrong (400)
  | 'not-found' //    the thing named does not exist (404)
  | 'conflict' //     legal input, illegal now: wrong state, duplicate name (409)
  | 'unavailable' //  the host cannot do it: no QEMU, no memory (503)
  | 'cancelled' //    the caller cancelled a job (499-ish; 409 on the wire)
  | 'failed' //       an operation on the outside world failed: QEMU refused, I/O error (500)
  | 'bug'; //         a broken invariant of ours (500)

export interface VisorErrorOptions {
  field?: string;
  hint?: string;
  cause?: unknown;
  details?: Record<string, unknown>;
}

export class VisorError extends Error {
  override readonly name = 'VisorError';
  readonly field: string | undefined;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    options: VisorErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.field = options.field;
    this.hint = options.hint;
    this.details = options.details;
  }

  toJSON(): SerializedError {
    return serializeError(this);
  }
}

/** The wire form of an error (the body of an RFC 9457 problem, minus `type`/`status`). */
export interface SerializedError {
  kind: ErrorKind;
  code: string;
  message: string;
  field?: string;
  hint?: string;
  details?: Record<string, unknown>;
}

export function serializeError(error: VisorError): SerializedError {
  const out: SerializedError = { kind: error.kind, code: error.code, message: error.message };
  if (error.field !== undefined) out.field = error.field;
  if (error.hint !== undefined) out.hint = error.hint;
  if (error.details !== undefined) out.details = error.details;
  return out;
}

export function invalid(field: string, message: string, hint?: string): VisorError {
  return new VisorError('invalid', 'invalid-value', message, { field, hint });
}

export function notFound(what: string, name: string, hint?: string): VisorError {
  return new VisorError('not-found', `${what}-not-found`, `No ${what} named "${name}" exists.`, {
    hint,
  });
}

export function bug(message: string, cause?: unknown): VisorError {
  return new VisorError('bug', 'internal-error', message, { cause });
}

export function cancelled(what: string): VisorError {
  return new VisorError('cancelled', 'cancelled', `${what} was cancelled.`);
}

/** Wraps anything thrown into a VisorError; VisorErrors pass through unchanged. */
export function asVisorError(error: unknown, fallbackCode = 'operation-failed'): VisorError {
  if (error instanceof VisorError) return error;
  if (error instanceof Error && error.name === 'AbortError') return cancelled('The operation');
  const message = error instanceof Error ? error.message : String(error);
  return new VisorError('failed', fallbackCode, message, { cause: error });
}
