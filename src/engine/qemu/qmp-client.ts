import type { WaitOptions } from './deadline.js';
import { QmpMonitor } from './qmp-monitor.js';
import type { MigrationInfo, QemuRunState } from './qmp-types.js';

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
}
