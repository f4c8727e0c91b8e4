import type { ErrorKind } from '../api/index.js';

/** What `visor` exits with; documented in `visor --help`. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
  unavailable: 5,
  cancelled: 130,
} as const;

export const EXIT_OF_KIND: Record<ErrorKind, number> = {
  invalid: EXIT.usage,
  'not-found': EXIT.notFound,
  conflict: EXIT.conflict,
  unavailable: EXIT.unavailable,
  cancelled: EXIT.cancelled,
  failed: EXIT.failed,
  bug: EXIT.failed,
};

export const EXIT_CODES_HELP = `
Exit codes:
  0    ok
  1    the operation failed
  2    invalid input or usage
  3    not found
  4    conflict: the VM (or job) is in the wrong state, or the name is taken
  5    the host or the daemon is unavailable
  130  cancelled (Ctrl-C)`;
