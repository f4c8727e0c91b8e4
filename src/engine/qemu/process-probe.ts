import { readFile } from 'node:fs/promises';
import type { WaitOptions } from './deadline.js';
import { pollUntil } from './poll.js';

/**
 * Facts about processes we did not start (QEMU daemonizes, so it is never our child): read from
 * /proc, never from our own bookkeeping. A zombie counts as gone.
 */
export async function isProcessAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": the state follows the last ')' (comm may hold spaces and parens).
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X' && state !== '';
  } catch {
    return false;
  }
}

/** The process's argv, or null when it is gone. */
export async function processArgv(pid: number): Promise<string[] | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`);
    if (raw.length === 0) return null;
    return raw.toString('utf8').replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

/** Reads a pidfile; null when missing or not a positive integer. */
export async function readPidFile(path: string): Promise<number | null> {
  try {
    const text = (await readFile(path, 'utf8')).trim();
    const pid = Number(text);
    return Number.isSafeInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * True when `argv` is a QEMU (system emulator) whose `-uuid` is `vmId`: guards every signal we
 * send against PID reuse.
 */
export function isQemuOfVm(argv: readonly string[] | null, vmId: string): boolean {
  if (!argv || argv.length === 0) return false;
  const uuid = argv.indexOf('-uuid');
  return /qemu-system/.test(argv[0] ?? '') && uuid >= 0 && argv[uuid + 1] === vmId;
}

/** True when `argv` is a qemu-storage-daemon serving this runtime folder's NBD socket. */
export function isStorageDaemonOf(argv: readonly string[] | null, nbdSocket: string): boolean {
  if (!argv || argv.length === 0) return false;
  return /qemu-storage-daemon/.test(argv[0] ?? '') && argv.some((arg) => arg.includes(`addr.path=${nbdSocket}`));
}

/** Waits until the process is gone (or a zombie). */
export async function waitForProcessExit(pid: number, options: WaitOptions & { what?: string } = {}): Promise<void> {
  await pollUntil(async () => ((await isProcessAlive(pid)) ? undefined : true), {
    what: options.what ?? `Waiting for process ${pid} to exit`,
    timeoutMs: options.timeoutMs ?? 10_000,
    intervalMs: 20,
    signal: options.signal,
  });
}

/** Sends a signal, ignoring a process that is already gone. */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Clock ticks per second of /proc's times (USER_HZ): 100 on every Linux architecture we run on. */
const USER_HZ = 100;

/** When the process started, from /proc/PID/stat's starttime and the host's boot time; null when gone. */
export async function processStartTime(pid: number): Promise<Date | null> {
  try {
    const [stat, procStat] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile('/proc/stat', 'utf8')]);
    // Fields after "pid (comm) ": state is field 3, starttime field 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[22 - 3]);
    const bootSeconds = Number(/^btime (\d+)$/m.exec(procStat)?.[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(bootSeconds)) return null;
    return new Date((bootSeconds + ticks / USER_HZ) * 1000);
  } catch {
    return null;
  }
}
