import { VisorError, asVisorError, type ErrorKind } from '../core/index.js';
import type { Problem } from '../api/contract/index.js';

/** The one place where an error's kind becomes an HTTP status. */
export const STATUS_OF_KIND: Record<ErrorKind, number> = {
  invalid: 400,
  'not-found': 404,
  conflict: 409,
  unavailable: 503,
  cancelled: 409,
  failed: 500,
  bug: 500,
};

const TITLE_OF_KIND: Record<ErrorKind, string> = {
  invalid: 'Invalid request',
  'not-found': 'Not found',
  conflict: 'Conflict with the current state',
  unavailable: 'The host cannot do this now',
  cancelled: 'Cancelled',
  failed: 'The operation failed',
  bug: 'Internal error',
};

/** Errors of node's HTTP layer that carry a 4xx statusCode. */
interface FrameworkError {
  statusCode?: number;
  code?: string;
  message?: string;
}

export function toVisorError(error: unknown): VisorError {
  if (error instanceof VisorError) return error;
  const framework = error as FrameworkError;
  if (typeof framework?.statusCode === 'number' && framework.statusCode >= 400 && framework.statusCode < 500) {
    const kind: ErrorKind = framework.statusCode === 404 ? 'not-found' : 'invalid';
    return new VisorError(kind, frameworkCode(framework.code), framework.message ?? 'The request is not valid.', { cause: error });
  }
  return asVisorError(error);
}

export function toProblem(error: unknown, instance?: string): Problem {
  const e = toVisorError(error);
  const problem: Problem = {
    type: `urn:visor:problem:${e.code}`,
    title: TITLE_OF_KIND[e.kind],
    status: STATUS_OF_KIND[e.kind],
    detail: e.message,
    kind: e.kind,
    code: e.code,
  };
  if (instance) problem.instance = instance;
  if (e.field !== undefined) problem.field = e.field;
  if (e.hint !== undefined) problem.hint = e.hint;
  if (e.details !== undefined) problem.details = e.details;
  return problem;
}

function frameworkCode(code: string | undefined): string {
  switch (code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'invalid-json';
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'body-too-large';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'unsupported-media-type';
    default:
      return 'invalid-request';
  }
}
