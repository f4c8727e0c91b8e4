import { VisorError } from '../../core/index.js';
import type { VmConfig } from '../../core/index.js';
import type { WaitOptions } from './deadline.js';
import { ENGINE_ERROR_CODES } from './engine-errors.js';
import { isProcessAlive, isQemuOfVm, processArgv, readPidFile } from './process-probe.js';
import { QmpClient } from './qmp-client.js';
import { QemuInstance } from './qemu-instance.js';
import { lastErrorLine, readLogTail } from './qemu-log.js';
import { runtimeFiles } from './runtime-files.js';
import type { VmPaths } from './runtime-files.js';
import { attachStorageDaemon, killLeftoverStorageDaemon } from './storage-daemon.js';

export interface ReattachOptions extends WaitOptions {
  config: VmConfig;
  paths: VmPaths;
}

/** The VM's QEMU had run (its pidfile is there) but is gone. */
export interface ExitedVm {
  exited: true;
  reason: string;
}

/**
 * Finds the VM's QEMU after a daemon restart. Returns:
 * - a QemuInstance when the pidfile's process is alive, is this VM's QEMU (its /proc cmdline
 *   carries the VM's uuid: a reused pid is not ours) and QMP answers;
 * - `{exited, reason}` when the pidfile names no such process (the reason from qemu.log), after
 *   killing a storage daemon left behind;
 * - null when there is no pidfile at all: the VM was not running.
 * Throws `vm-unresponsive` when our QEMU is alive but QMP does not answer (another client
 * holds the monitor, or QEMU hangs): it is not off, and must not be reported so.
 */
export async function reattachVm(options: ReattachOptions): Promise<QemuInstance | ExitedVm | null> {
  const { config } = options;
  const files = runtimeFiles(options.paths);
  const pid = await readPidFile(files.pidFile);
  if (pid === null) {
    await killLeftoverStorageDaemon(files);
    return null;
  }
  const alive = await isProcessAlive(pid);
  if (!alive || !isQemuOfVm(await processArgv(pid), config.id)) {
    await killLeftoverStorageDaemon(files);
    const line = lastErrorLine(await readLogTail(files.qemuLog, 10));
    const why = alive ? `pid ${pid} now belongs to another program` : `process ${pid} is gone`;
    return { exited: true, reason: line ? `${line} (${why})` : `QEMU exited (${why}).` };
  }
  let qmp: QmpClient;
  try {
    qmp = await QmpClient.connect(files.qmpSocket, { signal: options.signal, timeoutMs: options.timeoutMs ?? 5_000 });
  } catch (error) {
    throw new VisorError('failed', ENGINE_ERROR_CODES.vmUnresponsive, `VM "${config.name}" runs (QEMU pid ${pid}) but its QMP socket does not answer.`, {
      cause: error,
      hint: 'Another program may hold its monitor; close it, or turn the VM off with kill.',
      details: { pid },
    });
  }
  try {
    const storage = await attachStorageDaemon(files, { signal: options.signal, timeoutMs: options.timeoutMs ?? 5_000 });
    return new QemuInstance(config.id, pid, qmp, storage, files);
  } catch (error) {
    qmp.dispose();
    throw error;
  }
}
