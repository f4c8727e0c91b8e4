import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where one Visor instance keeps its state and its sockets. */
export interface VisorPaths {
  /** `$VISOR_HOME`: VMs, images, jobs, the API token. */
  home: string;
  /** `$VISOR_RUN`: the daemon's socket and log, VMs' runtime sockets. */
  run: string;
  /** `$VISOR_RUN/visord.sock`. */
  socket: string;
  /** `$VISOR_RUN/visord.log`: the output of a daemon the CLI started. */
  log: string;
  /** `$VISOR_HOME/api-token`: the bearer token for TCP clients. */
  token: string;
}

export interface PathInputs {
  env?: Record<string, string | undefined>;
  uid?: number;
  homeDir?: string;
}

/**
 * Resolves the instance's folders. `VISOR_HOME` and `VISOR_RUN` select an isolated instance
 * (tests use this); otherwise root gets /var/lib/visor and /run/visor, and a user gets
 * ~/.local/share/visor (or $XDG_DATA_HOME/visor) and $XDG_RUNTIME_DIR/visor. A user without
 * $XDG_RUNTIME_DIR falls back to /tmp/visor-UID. Pure: reads only what it is given.
 */
export function resolvePaths(inputs: PathInputs = {}): VisorPaths {
  const env = inputs.env ?? process.env;
  const uid = inputs.uid ?? process.getuid?.() ?? 0;
  const root = uid === 0;
  const home =
    nonEmpty(env.VISOR_HOME) ??
    (root ? '/var/lib/visor' : join(nonEmpty(env.XDG_DATA_HOME) ?? join(inputs.homeDir ?? homedir(), '.local', 'share'), 'visor'));
  const run =
    nonEmpty(env.VISOR_RUN) ??
    (root ? '/run/visor' : nonEmpty(env.XDG_RUNTIME_DIR) ? join(env.XDG_RUNTIME_DIR!, 'visor') : `/tmp/visor-${uid}`);
  return { home, run, socket: join(run, 'visord.sock'), log: join(run, 'visord.log'), token: join(home, 'api-token') };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
