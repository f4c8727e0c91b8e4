import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `ready` every `intervalMs` until it says yes. Fails, naming `what` and adding what
 * `detail` tells (the server's log or stderr), when the child exits first or after `timeoutMs`.
 */
export async function waitUntilReady(
  child: ChildProcess,
  what: string,
  ready: () => boolean | Promise<boolean>,
  options: { timeoutMs: number; intervalMs: number; detail?: () => string },
): Promise<void> {
  const started = performance.now();
  while (!(await ready())) {
    const said = options.detail ? `: ${options.detail()}` : '';
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode})${said}`);
    if (performance.now() - started > options.timeoutMs) throw new Error(`${what} did not start${said}`);
    await sleep(options.intervalMs);
  }
}

/**
 * Ends a child this test started: sends `signal` (none: it was told another way), waits up to
 * `graceMs` for it to exit, then SIGKILLs it if `kill`. A child already gone is left alone.
 */
export async function stopChild(child: ChildProcess, options: { signal: NodeJS.Signals | null; graceMs: number; kill: boolean }): Promise<void> {
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  if (gone()) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  if (options.signal) child.kill(options.signal);
  await Promise.race([exited, sleep(options.graceMs)]);
  if (options.kill && !gone()) child.kill('SIGKILL');
}
