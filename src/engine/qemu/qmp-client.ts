import type { WaitOptions } from './deadline.js';
import { QmpMonitor } from './qmp-monitor.js';
import type { BlockExportInfo, BlockInfo, BlockJobInfo, MigrationInfo, NamedBlockNode, QemuRunState } from './qmp-types.js';

/** The migration target of a saved state: a file, in QEMU 10's `channels` form. */
export function fileChannel(path: string): Array<Record<string, unknown>> {
  return [{ 'channel-type': 'main', addr: { transport: 'file', filename: path, offset: 0 } }];
}

/**
 * QMP with one typed method per command we use (the model: Incus' qmp/commands.go). Every
 * method takes the same `{signal, timeoutMs}` as `execute`.
 */
export class QmpClient extends QmpMonitor {
  async queryStatus(options?: WaitOptions): Promise<{ status: QemuRunState; running: boolean }> {
    return this.execute('query-status', undefined, options);
  }

  async queryVersion(options?: WaitOptions): Promise<{ qemu: { major: number; minor: number; micro: number }; package: string }> {
    return this.execute('query-version', undefined, options);
  }

  /** Pauses the vCPUs (runstate paused). */
  async stop(options?: WaitOptions): Promise<void> {
    await this.execute('stop', undefined, options);
  }

  /** Resumes the vCPUs. */
  async cont(options?: WaitOptions): Promise<void> {
    await this.execute('cont', undefined, options);
  }

  async systemReset(options?: WaitOptions): Promise<void> {
    await this.execute('system_reset', undefined, options);
  }

  /** Presses the ACPI power button; the guest decides what happens. */
  async systemPowerdown(options?: WaitOptions): Promise<void> {
    await this.execute('system_powerdown', undefined, options);
  }

  /** Asks QEMU to exit. It answers, emits SHUTDOWN (reason host-qmp-quit) and closes. */
  async quit(options?: WaitOptions): Promise<void> {
    await this.execute('quit', undefined, options);
  }

  async migrateSetParameters(parameters: Record<string, unknown>, options?: WaitOptions): Promise<void> {
    await this.execute('migrate-set-parameters', parameters, options);
  }

  async migrateSetCapabilities(capabilities: Record<string, boolean>, options?: WaitOptions): Promise<void> {
    const list = Object.entries(capabilities).map(([capability, state]) => ({ capability, state }));
    await this.execute('migrate-set-capabilities', { capabilities: list }, options);
  }

  /** Starts an outgoing migration to a file; returns at once, poll queryMigrate(). */
  async migrateToFile(path: string, options?: WaitOptions): Promise<void> {
    await this.execute('migrate', { channels: fileChannel(path) }, options);
  }

  /** With `-incoming defer`: reads a saved state from a file; returns at once. */
  async migrateIncomingFromFile(path: string, options?: WaitOptions): Promise<void> {
    await this.execute('migrate-incoming', { channels: fileChannel(path) }, options);
  }

  async queryMigrate(options?: WaitOptions): Promise<MigrationInfo> {
    return this.execute('query-migrate', undefined, options);
  }

  async migrateCancel(options?: WaitOptions): Promise<void> {
    await this.execute('migrate_cancel', undefined, options);
  }

  /** Writes the primary display to `filename` on the host, as PNG. */
  async screendump(filename: string, options?: WaitOptions): Promise<void> {
    await this.execute('screendump', { filename, format: 'png' }, options);
  }

  // Block layer (used by hotplug.ts, dvd-media.ts, block-jobs.ts; also on the storage daemon's QMP).

  /** Adds one block node; `options` is a BlockdevOptions object with its `node-name`. */
  async blockdevAdd(options: Record<string, unknown>, wait?: WaitOptions): Promise<void> {
    await this.execute('blockdev-add', options, wait);
  }

  async blockdevDel(nodeName: string, wait?: WaitOptions): Promise<void> {
    await this.execute('blockdev-del', { 'node-name': nodeName }, wait);
  }

  async deviceAdd(options: Record<string, unknown>, wait?: WaitOptions): Promise<void> {
    await this.execute('device_add', options, wait);
  }

  /** Asks for the device's removal; it is gone at event DEVICE_DELETED (PCI: when the guest agrees). */
  async deviceDel(id: string, wait?: WaitOptions): Promise<void> {
    await this.execute('device_del', { id }, wait);
  }

  async queryBlock(wait?: WaitOptions): Promise<BlockInfo[]> {
    return this.execute('query-block', undefined, wait);
  }

  async queryNamedBlockNodes(wait?: WaitOptions): Promise<NamedBlockNode[]> {
    return this.execute('query-named-block-nodes', { flat: true }, wait);
  }

  async queryBlockJobs(wait?: WaitOptions): Promise<BlockJobInfo[]> {
    return this.execute('query-block-jobs', undefined, wait);
  }

  async queryBlockExports(wait?: WaitOptions): Promise<BlockExportInfo[]> {
    return this.execute('query-block-exports', undefined, wait);
  }

  async blockExportAdd(options: Record<string, unknown>, wait?: WaitOptions): Promise<void> {
    await this.execute('block-export-add', options, wait);
  }

  async blockExportDel(id: string, wait?: WaitOptions & { force?: boolean }): Promise<void> {
    await this.execute('block-export-del', wait?.force ? { id, mode: 'hard' } : { id }, wait);
  }

  /** Starts a mirror job; returns at once. */
  async blockdevMirror(options: { 'job-id': string; device: string; target: string } & Record<string, unknown>, wait?: WaitOptions): Promise<void> {
    await this.execute('blockdev-mirror', options, wait);
  }

  /** A ready mirror pivots to its target (job-complete). */
  async jobComplete(id: string, wait?: WaitOptions): Promise<void> {
    await this.execute('job-complete', { id }, wait);
  }

  /** Cancels a block job; a ready mirror then stops without pivoting (force: even when paused). */
  async blockJobCancel(device: string, wait?: WaitOptions): Promise<void> {
    await this.execute('block-job-cancel', { device, force: true }, wait);
  }

  /** Removes a concluded job that was not auto-dismissed. */
  async jobDismiss(id: string, wait?: WaitOptions): Promise<void> {
    await this.execute('job-dismiss', { id }, wait);
  }

  /** Opens a removable drive's tray; `force` even when the guest has locked it. */
  async blockdevOpenTray(id: string, wait?: WaitOptions): Promise<void> {
    await this.execute('blockdev-open-tray', { id, force: true }, wait);
  }

  async blockdevCloseTray(id: string, wait?: WaitOptions): Promise<void> {
    await this.execute('blockdev-close-tray', { id }, wait);
  }

  async blockdevRemoveMedium(id: string, wait?: WaitOptions): Promise<void> {
    await this.execute('blockdev-remove-medium', { id }, wait);
  }

  async blockdevInsertMedium(id: string, nodeName: string, wait?: WaitOptions): Promise<void> {
    await this.execute('blockdev-insert-medium', { id, 'node-name': nodeName }, wait);
  }
}
