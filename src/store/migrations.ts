import { VisorError, VM_CONFIG_VERSION } from '../core/index.js';

/**
 * Brings an older vm.json up to the current schema version. Version 1 is the first; each later
 * version adds one step here, so any old folder still opens.
 */
export function migrateVmConfig(raw: unknown): unknown {
  if (raw === null || typeof raw !== 'object') return raw;
  const version = (raw as { schemaVersion?: unknown }).schemaVersion;
  if (typeof version === 'number' && version > VM_CONFIG_VERSION) {
    throw new VisorError(
      'failed',
      'config-too-new',
      `This VM was written by a newer Visor (schema version ${version}; this one reads up to ${VM_CONFIG_VERSION}).`,
      { hint: 'Upgrade Visor to open it.' },
    );
  }
  return raw;
}
