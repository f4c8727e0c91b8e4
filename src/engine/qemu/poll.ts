import { setTimeout as sleep } from 'node:timers/promises';
import { Deadline } from './deadline.js';

export interface PollOptions {
  /** Names the wait in the time-out error: "Saving the VM's memory". */
  what: string;
  timeoutMs: number;
  intervalMs: number;
  signal?: AbortSignal;
}

/**
 * The engine's one polling loop, for state QEMU only offers by query (migration progress,
 * guest-exec status, process exit). Calls `probe` until it returns a value other than
 * undefined; honours the signal and the time-out between and during probes.
 */
export async function pollUntil<T>(probe: (signal: AbortSignal) => Promise<T | undefined>, options: PollOptions): Promise<T> {
  const deadline = new Deadline(options.what, options.timeoutMs, options.signal);
  try {
    for (;;) {
      deadline.check();
      const value = await probe(deadline.signal);
      if (value !== undefined) return value;
      try {
        await sleep(options.intervalMs, undefined, { signal: deadline.signal });
      } catch {
        deadline.check();
      }
    }
  } finally {
    deadline.dispose();
  }
}
