// Imported past core's index on purpose: core/index.js loads zod (~55 ms), the CLI must not.
import { VisorError, type ErrorKind } from '../core/errors.js';
import type { Problem } from './contract/schemas.js';

const KINDS: readonly ErrorKind[] = ['invalid', 'not-found', 'conflict', 'unavailable', 'cancelled', 'failed', 'bug'];

/** Turns an RFC 9457 problem from the daemon back into the VisorError the daemon raised. */
export function problemToError(body: unknown, status: number): VisorError {
  const problem = (body ?? {}) as Partial<Problem>;
  const kind: ErrorKind = KINDS.includes(problem.kind as ErrorKind) ? (problem.kind as ErrorKind) : kindOfStatus(status);
  const message = problem.detail ?? problem.title ?? `The daemon answered HTTP ${status}.`;
  return new VisorError(kind, problem.code ?? `http-${status}`, message, {
    field: problem.field,
    hint: problem.hint,
    details: problem.details,
  });
}

function kindOfStatus(status: number): ErrorKind {
  if (status === 400 || status === 401 || status === 403 || status === 413 || status === 415) return 'invalid';
  if (status === 404) return 'not-found';
  if (status === 409) return 'conflict';
  if (status === 503) return 'unavailable';
  return 'failed';
}
