import { randomUUID } from 'node:crypto';
import { open, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { VisorError, cancelled, quietContext } from '../../core/index.js';
import type { DiskAttachment, OperationContext } from '../../core/index.js';
import { raceSignal } from './deadline.js';
import type { WaitOptions } from './deadline.js';
import { ENGINE_ERROR_CODES } from './engine-errors.js';
import { pollUntil } from './poll.js';
import { isProcessAlive, isQemuOfVm, processArgv, signalProcess, waitForProcessExit } from './process-probe.js';
import type { QmpClient } from './qmp-client.js';
import { qemuCapabilities } from './capabilities.js';
import { changeDvdMedium } from './dvd-media.js';
import { addDisk, removeDisk } from './hotplug.js';
import type { HotplugOptions, HotplugTarget } from './hotplug.js';
import { moveStorage } from './storage-move.js';
import type { DiskMove, MoveTarget, StorageMoveOptions, StorageMoveResult } from './storage-move.js';
import { attachStorageDaemon, startStorageDaemon } from './storage-daemon.js';
import { lastErrorLine, readLogTail } from './qemu-log.js';
import type { QemuRunState, QmpEvent } from './qmp-types.js';
import type { RuntimeFiles } from './runtime-files.js';
import type { StorageDaemon } from './storage-daemon.js';
import { describeExit, type VmExit } from './vm-exit.js';

/** How long a save may take; a 16 GiB guest at ~1 GiB/s fits with room. */
const DEFAULT_SAVE_TIMEOUT_MS = 10 * 60_000;
const MIGRATION_POLL_INTERVAL_MS = 100;
const DEFAULT_QUIT_TIMEOUT_MS = 5_000;

/** Milliseconds from the launchVm() call to each step, for the curious and for benchmarks. */
export interface LaunchTimings {
  /** The QEMU binary was spawned (after the runtime folder, firmware and storage daemon). */
  spawnedMs: number;
  /** QEMU initialised and daemonized (its first process exited 0). */
  daemonizedMs: number;
  /** QMP greeted and negotiated. */
  qmpReadyMs: number;
  /** The saved state was read back (with incomingStateFile). */
  restoredMs?: number;
}

/**
 * One running VM's QEMU, launched or reattached. Commands go over QMP; the process is not our
 * child. `dispose()` closes our connections and never stops the VM.
 */
export class QemuInstance implements Disposable, HotplugTarget, MoveTarget {
  #lastShutdown: QmpEvent | null = null;
  #exit: Promise<VmExit> | null = null;
  #disposed = false;

  constructor(
    readonly vmId: string,
    readonly pid: number,
    readonly qmp: QmpClient,
    /** Set later when a hot-added VHDX/VHD disk starts one on demand (hotplug.ts). */
    public storage: StorageDaemon | null,
    readonly files: RuntimeFiles,
    readonly timings: LaunchTimings | null = null,
  ) {
    qmp.on('event', (event) => {
      if (event.event === 'SHUTDOWN') this.#lastShutdown = event;
    });
    // Start watching at once so a SHUTDOWN before the first waitForExit() is not lost.
    this.#exit = this.#watchExit();
    this.#exit.catch(() => undefined);
  }

  /** QEMU's runstate: running, paused, postmigrate, inmigrate, ... */
  async status(options?: WaitOptions): Promise<QemuRunState> {
    return (await this.qmp.queryStatus(options)).status;
  }

  async pause(options?: WaitOptions): Promise<void> {
    await this.qmp.stop(options);
  }

  async resume(options?: WaitOptions): Promise<void> {
    await this.qmp.cont(options);
  }

  async reset(options?: WaitOptions): Promise<void> {
    await this.qmp.systemReset(options);
  }

  /** Presses the ACPI power button. Pair with waitForExit(). */
  async powerDown(options?: WaitOptions): Promise<void> {
    await this.qmp.systemPowerdown(options);
  }

  /**
   * Turns the VM off: QMP `quit`, then SIGKILL if QEMU is still there after the time-out; then
   * stops the storage daemon. Safe to call again, or after QEMU has gone.
   */
  async quit(options: WaitOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_QUIT_TIMEOUT_MS;
    if (await this.#isOurQemu()) {
      if (!this.qmp.closed) await this.qmp.quit({ timeoutMs, signal: options.signal }).catch(() => undefined);
      try {
        await waitForProcessExit(this.pid, { timeoutMs, signal: options.signal, what: 'Waiting for QEMU to quit' });
      } catch {
        if (await this.#isOurQemu()) signalProcess(this.pid, 'SIGKILL');
        await waitForProcessExit(this.pid, { timeoutMs: 5_000, what: 'Waiting for QEMU to die' });
      }
    }
    if (this.storage) await this.storage.stop({ timeoutMs });
    this.dispose();
  }

  /**
   * Saves the VM's state to `file` (QEMU's migration stream) and turns QEMU off. Progress goes
   * to ctx from query-migrate. If cancelled or failed, the migration is cancelled and the VM
   * runs on in its previous runstate. On success the file is fsynced and QEMU has quit.
   */
  async saveState(file: string, ctx: OperationContext = quietContext(), options: { timeoutMs?: number } = {}): Promise<void> {
    const wait = { signal: ctx.signal };
    // QEMU caps migration at 128 MiB/s by default; 0 lifts the cap (QEMU-FACTS.md).
    await this.qmp.migrateSetParameters({ 'max-bandwidth': 0 }, wait);
    await rm(file, { force: true });
    ctx.progress(0, 'Saving memory');
    await this.qmp.migrateToFile(file, wait);
    try {
      await pollUntil(
        async (signal) => {
          const info = await this.qmp.queryMigrate({ signal });
          if (info.status === 'completed') return true;
          if (info.status === 'failed' || info.status === 'cancelled') {
            throw new VisorError('failed', ENGINE_ERROR_CODES.saveFailed, `Saving the VM's memory failed: ${info['error-desc'] ?? info.status}.`);
          }
          const ram = info.ram;
          if (ram && ram.total > 0) ctx.progress(Math.min(0.95, ram.transferred / ram.total), 'Saving memory');
          return undefined;
        },
        { what: "Saving the VM's memory", timeoutMs: options.timeoutMs ?? DEFAULT_SAVE_TIMEOUT_MS, intervalMs: MIGRATION_POLL_INTERVAL_MS, signal: ctx.signal },
      );
    } catch (error) {
      await this.qmp.migrateCancel({ timeoutMs: 5_000 }).catch(() => undefined);
      await rm(file, { force: true });
      throw ctx.signal.aborted ? cancelled('Saving the VM') : error;
    }
    ctx.progress(0.96, 'Stopping QEMU');
    await this.quit();
    await fsyncFile(file);
    ctx.progress(1, 'Saved');
  }

  /**
   * Hot-adds a disk (SCSI or virtio; IDE is refused): see hotplug.ts. A VHDX/VHD disk starts
   * the VM's storage daemon if it has none. Persist the disk in vm.json after this returns.
   */
  async addDisk(disk: DiskAttachment, options: HotplugOptions): Promise<void> {
    await addDisk(this, disk, options);
  }

  /** Hot-removes a disk by id (device, then its nodes and export). */
  async removeDisk(diskId: string, options?: WaitOptions): Promise<void> {
    await removeDisk(this, diskId, options);
  }

  /** Inserts an ISO into the DVD drive, or ejects it (null), even when the guest locked the tray. */
  async changeDvdMedium(iso: string | null, options?: WaitOptions): Promise<void> {
    await changeDvdMedium(this.qmp, iso, options);
  }

  /** Live storage move of some disks: see storage-move.ts for the protocol and the record. */
  async moveStorage(moves: readonly DiskMove[], ctx?: OperationContext, options?: StorageMoveOptions): Promise<StorageMoveResult> {
    return moveStorage(this, moves, ctx, options);
  }

  /** The VM's storage daemon; with `start`, one is started (with no disk) if there is none. */
  async storageDaemon(options: WaitOptions & { start: boolean }): Promise<StorageDaemon | null> {
    if (this.storage && !this.storage.qmp.closed) return this.storage;
    this.storage = await attachStorageDaemon(this.files, options);
    if (this.storage || !options.start) return this.storage;
    const binary = (await qemuCapabilities(options)).storageDaemonBinary;
    this.storage = await startStorageDaemon({ disks: [] }, this.files, binary, { ...options, always: true });
    return this.storage;
  }

  /** PNG bytes of the primary display (at the guest's current mode). */
  async screendump(options?: WaitOptions): Promise<Buffer> {
    const file = join(this.files.runDir, `screendump-${randomUUID()}.png`);
    try {
      await this.qmp.screendump(file, options);
      return await readFile(file);
    } finally {
      await rm(file, { force: true });
    }
  }

  /**
   * Resolves when QEMU has exited, with why (guest power-off, our quit, a signal, a crash).
   * Rejects only if the signal aborts or this instance is disposed first.
   */
  async waitForExit(signal?: AbortSignal): Promise<VmExit> {
    const exit = this.#exit ?? this.#watchExit();
    return signal ? raceSignal(exit, signal) : exit;
  }

  /** Closes our QMP connections (QEMU's and the storage daemon's). The VM runs on. */
  dispose(): void {
    this.#disposed = true;
    this.qmp.dispose();
    this.storage?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async #watchExit(): Promise<VmExit> {
    await new Promise<void>((resolve) => {
      if (this.qmp.closed) resolve();
      else this.qmp.once('close', () => resolve());
    });
    if (this.#disposed && (await this.#isOurQemu())) {
      throw new VisorError('cancelled', 'cancelled', 'Stopped watching the VM: its QEMU instance was disposed.');
    }
    // QEMU closes the monitor a moment before the process is gone.
    await waitForProcessExit(this.pid, { timeoutMs: 10_000 }).catch(() => undefined);
    if (await isProcessAlive(this.pid)) {
      return { kind: 'unknown', reason: 'QEMU closed its QMP socket but is still running.', shutdownReason: null };
    }
    // The storage daemon is part of the VM: it goes when QEMU goes, however QEMU went.
    await this.storage?.stop({ timeoutMs: 5_000 }).catch(() => undefined);
    const line = lastErrorLine(await readLogTail(this.files.qemuLog, 10));
    return describeExit(this.#lastShutdown, line);
  }

  async #isOurQemu(): Promise<boolean> {
    return (await isProcessAlive(this.pid)) && isQemuOfVm(await processArgv(this.pid), this.vmId);
  }

}

/** fsync a file and its folder, so a saved state survives a power cut once we say "saved". */
async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
