import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { VisorError } from '../../core/index.js';
import { Deadline } from './deadline.js';
import { ENGINE_ERROR_CODES } from './engine-errors.js';
import { lastErrorLine, readLogTail } from './qemu-log.js';

export interface DaemonizeOptions {
  /** Both stdout and stderr of the process are appended here; we never hold a pipe to it. */
  logFile: string;
  /** Names the program in errors: "QEMU", "the storage daemon". */
  what: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/**
 * Runs a QEMU program that takes `--daemonize`: the process we start checks its arguments,
 * opens its sockets, forks the real daemon (which calls setsid) and exits 0 — or prints why it
 * cannot and exits non-zero. We wait for that first process only; the daemon is never our
 * child and its stdio is the log file, so it outlives us.
 */
export async function runDaemonizing(binary: string, args: readonly string[], options: DaemonizeOptions): Promise<void> {
  const deadline = new Deadline(`Starting ${options.what}`, options.timeoutMs ?? 30_000, options.signal);
  const log = await open(options.logFile, 'a', 0o600);
  try {
    deadline.check();
    const child = spawn(binary, args, { stdio: ['ignore', log.fd, log.fd], detached: true });
    const code = await new Promise<number | string>((resolve, reject) => {
      const onAbort = (): void => {
        child.kill('SIGKILL');
        reject(deadline.signal.reason as Error);
      };
      deadline.signal.addEventListener('abort', onAbort, { once: true });
      child.once('error', (error) => {
        deadline.signal.removeEventListener('abort', onAbort);
        reject(new VisorError('unavailable', ENGINE_ERROR_CODES.qemuNotFound, `Cannot run ${binary}: ${error.message}.`, { cause: error }));
      });
      child.once('exit', (exitCode, signal) => {
        deadline.signal.removeEventListener('abort', onAbort);
        resolve(exitCode ?? signal ?? -1);
      });
    });
    if (code !== 0) {
      const tail = await readLogTail(options.logFile, 10);
      const line = lastErrorLine(tail) ?? `it exited with ${code}`;
      throw new VisorError('failed', ENGINE_ERROR_CODES.qemuStartFailed, `${capitalise(options.what)} did not start: ${line}`, {
        details: { exitCode: code, log: tail },
        hint: `See ${options.logFile}.`,
      });
    }
  } finally {
    deadline.dispose();
    await log.close();
  }
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
