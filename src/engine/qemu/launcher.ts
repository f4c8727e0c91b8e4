import { copyFile, mkdir, rm, constants } from 'node:fs/promises';
import { dirname } from 'node:path';
import { VisorError, cancelled } from '../../core/index.js';
import type { VmConfig } from '../../core/index.js';
import { qemuCapabilities } from './capabilities.js';
import type { QemuCapabilities } from './capabilities.js';
import { runDaemonizing } from './daemonize.js';
import { Deadline } from './deadline.js';
import { ENGINE_ERROR_CODES } from './engine-errors.js';
import { selectFirmware } from './firmware.js';
import type { UefiFirmware } from './firmware.js';
import { pollUntil } from './poll.js';
import { isProcessAlive, isQemuOfVm, processArgv, readPidFile, signalProcess, waitForProcessExit } from './process-probe.js';
import { buildQemuArgs } from './qemu-args.js';
import type { Accelerator } from './qemu-args.js';
import { QmpClient } from './qmp-client.js';
import { QemuInstance } from './qemu-instance.js';
import type { LaunchTimings } from './qemu-instance.js';
import { Revert } from './revert.js';
import { checkSocketPaths, runtimeFiles } from './runtime-files.js';
import type { RuntimeFiles, VmPaths } from './runtime-files.js';
import { connectStorageDaemon, spawnStorageDaemon, stopStorageDaemon } from './storage-daemon.js';

export interface LaunchOptions {
  config: VmConfig;
  paths: VmPaths;
  accelerator: Accelerator;
  /** Restore this saved state (from saveState()); the VM is left paused: call resume(). */
  incomingStateFile?: string;
  signal?: AbortSignal;
  /** Budget of the whole launch (not of a restore's read, which has its own). Default 30 s. */
  timeoutMs?: number;
  /** Default: qemuCapabilities() (probed once per process). */
  qemu?: QemuCapabilities;
  /** Passed through to buildQemuArgs. */
  cpuModel?: string;
  machineType?: string;
}

const DEFAULT_LAUNCH_TIMEOUT_MS = 30_000;
const DEFAULT_RESTORE_TIMEOUT_MS = 10 * 60_000;

/**
 * Starts a VM: runtime folder (0700) → the VM's copy of the UEFI variables (generation 2, first
 * start) → its storage daemon (VHDX/VHD disks) → QEMU, detached → QMP. With a saved state,
 * QEMU starts with `-incoming defer -S`, reads the file and stays paused. Any failure undoes
 * what was done: no process is left behind.
 */
export async function launchVm(options: LaunchOptions): Promise<QemuInstance> {
  const started = performance.now();
  const since = (): number => Math.round(performance.now() - started);
  const { config } = options;
  const files = runtimeFiles(options.paths);
  checkSocketPaths(files);
  const deadline = new Deadline(`Starting VM "${config.name}"`, options.timeoutMs ?? DEFAULT_LAUNCH_TIMEOUT_MS, options.signal);
  const revert = new Revert();
  try {
    const qemu = options.qemu ?? (await qemuCapabilities({ signal: deadline.signal }));
    await prepareRunDir(files, config);
    const firmware = selectFirmware(config);
    if (firmware) await ensureFirmwareVars(firmware, files);
    deadline.check();

    // The storage daemon first, until it listens: QEMU's NBD client must find its socket at
    // once (a client that retries waits a whole second, 10.0.2). Our QMP connection to the
    // daemon is made while QEMU starts.
    const storagePid = await spawnStorageDaemon(config, files, qemu.storageDaemonBinary, { signal: deadline.signal });
    if (storagePid !== null) revert.add(() => stopStorageDaemon(storagePid, files));
    const storageStart = storagePid === null ? Promise.resolve(null) : connectStorageDaemon(storagePid, files, { signal: deadline.signal });
    const args = buildQemuArgs(config, {
      files,
      accelerator: options.accelerator,
      firmware,
      incoming: options.incomingStateFile !== undefined,
      cpuModel: options.cpuModel,
      machineType: options.machineType,
    });
    const spawnedMs = since();
    revert.add(() => killQemu(files, config.id));
    const qemuDaemonized = runDaemonizing(qemu.qemuBinary, args, { logFile: files.qemuLog, what: 'QEMU', signal: deadline.signal });
    const [storageStarted, qemuStarted] = await Promise.allSettled([storageStart, qemuDaemonized]);
    if (storageStarted.status === 'fulfilled' && storageStarted.value) revert.add(() => storageStarted.value?.dispose());
    if (qemuStarted.status === 'rejected') throw qemuStarted.reason;
    if (storageStarted.status === 'rejected') throw storageStarted.reason;
    const storage = storageStarted.value;
    const daemonizedMs = since();
    const pid = await readPidFile(files.pidFile);
    if (pid === null) throw new VisorError('bug', ENGINE_ERROR_CODES.qemuStartFailed, `QEMU started but wrote no pidfile at ${files.pidFile}.`);

    const qmp = await QmpClient.connect(files.qmpSocket, { signal: deadline.signal, timeoutMs: deadline.timeoutMs });
    revert.add(() => qmp.dispose());
    const timings: LaunchTimings = { spawnedMs, daemonizedMs, qmpReadyMs: since() };

    if (options.incomingStateFile !== undefined) {
      await restoreState(qmp, options.incomingStateFile, options.signal);
      timings.restoredMs = since();
    }
    revert.release();
    return new QemuInstance(config.id, pid, qmp, storage, files, timings);
  } catch (error) {
    await revert.run();
    if (deadline.signal.aborted && options.signal?.aborted) throw cancelled(`Starting VM "${config.name}"`);
    throw error;
  } finally {
    deadline.dispose();
  }
}

/** The runtime folder, owner-only, cleared of a previous run's sockets and pidfiles. */
async function prepareRunDir(files: RuntimeFiles, config: VmConfig): Promise<void> {
  const pid = await readPidFile(files.pidFile);
  if (pid !== null && (await isProcessAlive(pid)) && isQemuOfVm(await processArgv(pid), config.id)) {
    throw new VisorError('conflict', ENGINE_ERROR_CODES.alreadyRunning, `VM "${config.name}" already runs (QEMU pid ${pid}).`, {
      hint: 'Reattach to it instead of starting it again.',
    });
  }
  await mkdir(files.runDir, { recursive: true, mode: 0o700 });
  for (const stale of [files.qmpSocket, files.vncSocket, files.serialSocket, files.agentSocket, files.pidFile]) {
    await rm(stale, { force: true });
  }
}

/** Copies the OVMF variable template on the VM's first UEFI start; later starts keep it. */
async function ensureFirmwareVars(firmware: UefiFirmware, files: RuntimeFiles): Promise<void> {
  await mkdir(dirname(files.firmwareVars), { recursive: true, mode: 0o700 });
  try {
    await copyFile(firmware.varsTemplate, files.firmwareVars, constants.COPYFILE_EXCL);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code === 'ENOENT') {
      throw new VisorError('unavailable', ENGINE_ERROR_CODES.firmwareMissing, `The UEFI firmware "${firmware.varsTemplate}" is missing.`, {
        hint: 'Install the ovmf package.',
        cause: error,
      });
    }
    throw error;
  }
}

/** Feeds a saved state to a QEMU started with -incoming defer -S; it ends paused. */
async function restoreState(qmp: QmpClient, file: string, signal: AbortSignal | undefined): Promise<void> {
  await qmp.migrateIncomingFromFile(file, { signal });
  await pollUntil(
    async (s) => {
      const info = await qmp.queryMigrate({ signal: s });
      if (info.status === 'completed') return true;
      if (info.status === 'failed' || info.status === 'cancelled') {
        throw new VisorError('failed', ENGINE_ERROR_CODES.restoreFailed, `Restoring the saved state failed: ${info['error-desc'] ?? info.status}.`, {
          hint: 'The state file may be damaged or from a different VM configuration.',
        });
      }
      return undefined;
    },
    { what: 'Restoring the saved state', timeoutMs: DEFAULT_RESTORE_TIMEOUT_MS, intervalMs: 50, signal },
  );
  // -S keeps the restored VM paused (QEMU 10 would otherwise resume it at once).
  const { status } = await qmp.queryStatus({ signal });
  if (status !== 'paused') {
    throw new VisorError('bug', ENGINE_ERROR_CODES.restoreFailed, `After restoring, QEMU is "${status}" instead of paused.`);
  }
}

/** Undo of a launch: SIGKILL the QEMU of this VM if its pidfile names one. */
async function killQemu(files: RuntimeFiles, vmId: string): Promise<void> {
  const pid = await readPidFile(files.pidFile);
  if (pid === null || !isQemuOfVm(await processArgv(pid), vmId)) return;
  signalProcess(pid, 'SIGKILL');
  await waitForProcessExit(pid, { timeoutMs: 5_000 });
  await rm(files.pidFile, { force: true });
}
