import { connect } from 'node:net';
import { lstat, mkdir, open, readFile, rm, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { VisorError } from '../core/index.js';

/** How long a connect to an existing socket may take before we call it dead. */
const PROBE_TIMEOUT_MS = 1000;
/** How long we wait for another starting daemon to finish claiming the socket. */
const LOCK_WAIT_MS = 3000;

/** Whether something accepts connections on the unix socket at `path`. */
export function socketAnswers(path: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      // Accepting nothing within a second: a wedged daemon still owns the socket.
      resolve(true);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/**
 * Makes `path` free for our daemon: refuses if another daemon answers there, removes a stale
 * socket a dead daemon left (only a socket, and only if nothing answers). Two daemons starting
 * at once are serialized by a short-lived lock file holding the claimant's pid; the returned
 * function releases it once we listen.
 */
export async function claimSocket(path: string): Promise<() => Promise<void>> {
  await mkdir(dirnameOf(path), { recursive: true, mode: 0o700 });
  const release = await lock(`${path}.lock`);
  try {
    let stat;
    try {
      stat = await lstat(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return release;
      throw error;
    }
    if (!stat.isSocket()) {
      throw new VisorError('conflict', 'socket-path-taken', `${path} exists and is not a socket.`, {
        hint: 'Move that file away, or point VISOR_RUN at another folder.',
      });
    }
    if (await socketAnswers(path)) {
      throw new VisorError('conflict', 'daemon-running', `Another Visor daemon answers on ${path}.`, {
        hint: 'Use the running daemon, or stop it first; VISOR_RUN selects another instance.',
      });
    }
    await unlink(path);
    return release;
  } catch (error) {
    await release();
    throw error;
  }
}

async function lock(path: string): Promise<() => Promise<void>> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const file = await open(path, 'wx', 0o600);
      await file.writeFile(String(process.pid));
      await file.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    // An empty lock is one being written: wait for its pid, unless it stays empty.
    const written = !Number.isNaN(holder) || Date.now() > deadline;
    if (written && !isAlive(holder)) {
      await rm(path, { force: true });
      continue;
    }
    if (written && Date.now() > deadline) {
      throw new VisorError('conflict', 'daemon-starting', `Another Visor daemon (pid ${holder}) is starting on ${path.replace(/\.lock$/, '')}.`, {
        hint: 'Wait for it, and use it.',
      });
    }
    await sleep(50);
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function dirnameOf(path: string): string {
  const index = path.lastIndexOf('/');
  return index <= 0 ? '/' : path.slice(0, index);
}
