import { openSync, closeSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { VisorClient, VisorError, resolvePaths, type VisorPaths } from '../api/index.js';

/** How long the CLI waits for a daemon it started to answer. */
const DAEMON_START_TIMEOUT_MS = 10_000;
const DAEMON_POLL_MS = 25;

/**
 * The client for this instance: TCP when VISOR_URL is set (with VISOR_TOKEN), else the unix
 * socket of $VISOR_RUN, with a daemon started on demand when none answers there.
 */
export function clientFromEnvironment(env = process.env): { client: VisorClient; paths: VisorPaths; canStartDaemon: boolean } {
  const paths = resolvePaths({ env });
  if (env.VISOR_URL) return { client: new VisorClient({ url: env.VISOR_URL, token: env.VISOR_TOKEN }), paths, canStartDaemon: false };
  return { client: new VisorClient({ socketPath: paths.socket }), paths, canStartDaemon: env.VISOR_NO_AUTOSTART !== '1' };
}

/**
 * Runs `work` with a client; when no daemon answers on the socket (and nothing reached one),
 * starts `visor daemon` detached, as VirtualBox does with VBoxSVC, and runs `work` again.
 */
export async function withClient<T>(work: (client: VisorClient) => Promise<T>): Promise<T> {
  const { client, paths, canStartDaemon } = clientFromEnvironment();
  try {
    return await work(client);
  } catch (error) {
    if (!canStartDaemon || !isNoDaemon(error)) throw error;
  }
  await startDaemon(paths);
  return work(client);
}

function isNoDaemon(error: unknown): boolean {
  if (!(error instanceof VisorError) || error.code !== 'daemon-unavailable') return false;
  const errno = error.details?.errno;
  // ECONNRESET/EPIPE may have reached a daemon: never retry those.
  return errno === 'ENOENT' || errno === 'ECONNREFUSED';
}

/** `bin/visor` beside this checkout: dist/src/cli/connect.js → ../../../bin/visor. */
function visorExecutable(): string {
  return realpathSync(fileURLToPath(new URL('../../../bin/visor', import.meta.url)));
}

export async function startDaemon(paths: VisorPaths): Promise<void> {
  // Loaded here, not at start-up: most commands find a daemon and never need them.
  const [{ spawn }, { connect }] = await Promise.all([import('node:child_process'), import('node:net')]);
  const answers = (path: string): Promise<boolean> =>
    new Promise((resolve) => {
      const socket = connect(path);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  mkdirSync(paths.run, { recursive: true, mode: 0o700 });
  const log = openSync(paths.log, 'a', 0o600);
  let exited: number | null = null;
  try {
    const child = spawn(visorExecutable(), ['daemon'], {
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, VISOR_HOME: paths.home, VISOR_RUN: paths.run, VISOR_NODE: process.execPath },
    });
    child.once('exit', (code) => {
      exited = code ?? 1;
    });
    child.unref();
  } finally {
    closeSync(log);
  }
  const deadline = Date.now() + DAEMON_START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await answers(paths.socket)) return;
    // Exit code 4 is "another daemon answers": one started at the same time as ours; use it.
    if (exited !== null && exited !== 4) break;
    await new Promise((resolve) => setTimeout(resolve, DAEMON_POLL_MS));
  }
  if (await answers(paths.socket)) return;
  throw new VisorError('unavailable', 'daemon-start-failed', `The Visor daemon did not start${exited !== null ? ` (it exited with ${exited})` : ' within 10 s'}.`, {
    hint: `See ${paths.log}${logTail(paths.log)}`,
  });
}

function logTail(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n').slice(-3);
    return lines.length ? `:\n  ${lines.join('\n  ')}` : '.';
  } catch {
    return '.';
  }
}
