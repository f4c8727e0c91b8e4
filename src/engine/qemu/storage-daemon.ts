import { mkdir, rm } from 'node:fs/promises';
import type { VmConfig } from '../../core/index.js';
import type { WaitOptions } from './deadline.js';
import { runDaemonizing } from './daemonize.js';
import { isProcessAlive, isStorageDaemonOf, processArgv, readPidFile, signalProcess, waitForProcessExit } from './process-probe.js';
import { QmpClient } from './qmp-client.js';
import type { RuntimeFiles } from './runtime-files.js';
import { buildStorageDaemonArgs } from './storage-daemon-args.js';

/**
 * The VM's qemu-storage-daemon: serves its VHDX/VHD disks over NBD and takes block jobs on its
 * own QMP. A detached process like QEMU; disposing closes our QMP connection only.
 */
export class StorageDaemon implements Disposable {
  constructor(
    readonly pid: number,
    readonly qmp: QmpClient,
    readonly files: RuntimeFiles,
  ) {}

  /** Asks it to quit (it flushes and closes the images), then SIGKILL after the time-out. */
  async stop(options: WaitOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 5_000;
    if (!this.qmp.closed) await this.qmp.quit({ timeoutMs }).catch(() => undefined);
    await stopProcess(this.pid, this.files, timeoutMs);
    this.dispose();
  }

  dispose(): void {
    this.qmp.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** `always`: start one with no disk; `blockDevices`: paths known to be block devices. */
export type StorageDaemonStart = WaitOptions & { always?: boolean; blockDevices?: ReadonlySet<string> };

/**
 * Starts the VM's storage daemon, or returns null when the VM has no disk it must serve
 * (`always`: start one with no disk, for a disk hot-added later; reattach finds it the same way).
 */
export async function startStorageDaemon(
  config: Pick<VmConfig, 'disks'>,
  files: RuntimeFiles,
  binary: string,
  options: StorageDaemonStart = {},
): Promise<StorageDaemon | null> {
  const pid = await spawnStorageDaemon(config, files, binary, options);
  return pid === null ? null : connectStorageDaemon(pid, files, options);
}

/**
 * The first half of startStorageDaemon: runs the daemon until it has daemonized — its NBD
 * socket listens from then on, so QEMU may start — and answers its pid (null: nothing to serve).
 */
export async function spawnStorageDaemon(
  config: Pick<VmConfig, 'disks'>,
  files: RuntimeFiles,
  binary: string,
  options: StorageDaemonStart = {},
): Promise<number | null> {
  const args = buildStorageDaemonArgs(config, files, { always: options.always, blockDevices: options.blockDevices });
  if (!args) return null;
  await mkdir(files.storageDir, { recursive: true, mode: 0o700 });
  await rm(files.storageNbdSocket, { force: true });
  await rm(files.storageQmpSocket, { force: true });
  await runDaemonizing(binary, args, { logFile: files.storageLog, what: 'the storage daemon', ...options });
  const pid = await readPidFile(files.storagePidFile);
  if (pid === null) throw new Error(`The storage daemon wrote no pidfile at ${files.storagePidFile}.`);
  return pid;
}

/** The second half: our QMP connection to a daemon spawnStorageDaemon started (killed if it fails). */
export async function connectStorageDaemon(pid: number, files: RuntimeFiles, options: WaitOptions = {}): Promise<StorageDaemon> {
  try {
    const qmp = await QmpClient.connect(files.storageQmpSocket, options);
    return new StorageDaemon(pid, qmp, files);
  } catch (error) {
    await stopProcess(pid, files, 1_000);
    throw error;
  }
}

/** Reconnects to a running storage daemon of this runtime folder; null when there is none. */
export async function attachStorageDaemon(files: RuntimeFiles, options: WaitOptions = {}): Promise<StorageDaemon | null> {
  const pid = await ownStorageDaemonPid(files);
  if (pid === null) return null;
  const qmp = await QmpClient.connect(files.storageQmpSocket, options);
  return new StorageDaemon(pid, qmp, files);
}

/** Kills a storage daemon left behind by a QEMU that is gone. True if there was one. */
export async function killLeftoverStorageDaemon(files: RuntimeFiles): Promise<boolean> {
  const pid = await ownStorageDaemonPid(files);
  if (pid === null) return false;
  await stopProcess(pid, files, 2_000);
  return true;
}

async function ownStorageDaemonPid(files: RuntimeFiles): Promise<number | null> {
  const pid = await readPidFile(files.storagePidFile);
  if (pid === null || !(await isProcessAlive(pid))) return null;
  return isStorageDaemonOf(await processArgv(pid), files.storageNbdSocket) ? pid : null;
}

/** Stops a storage daemon by its pid (the undo of a launch that failed after spawning it). */
export async function stopStorageDaemon(pid: number, files: RuntimeFiles): Promise<void> {
  await stopProcess(pid, files, 2_000);
}

/** SIGTERM, then SIGKILL if it is still there after `timeoutMs`; checks identity first. */
async function stopProcess(pid: number, files: RuntimeFiles, timeoutMs: number): Promise<void> {
  if (!isStorageDaemonOf(await processArgv(pid), files.storageNbdSocket)) return;
  signalProcess(pid, 'SIGTERM');
  try {
    await waitForProcessExit(pid, { timeoutMs });
  } catch {
    if (isStorageDaemonOf(await processArgv(pid), files.storageNbdSocket)) signalProcess(pid, 'SIGKILL');
    await waitForProcessExit(pid, { timeoutMs: 5_000 });
  }
}
