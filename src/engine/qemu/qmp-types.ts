/** QMP wire types (docs/interop/qmp-spec.rst). */

export interface QmpGreeting {
  QMP: {
    version: { qemu: { major: number; minor: number; micro: number }; package: string };
    capabilities: string[];
  };
}

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpErrorBody {
  class: string;
  desc: string;
}

export type QmpResponse = { id?: unknown; return: unknown } | { id?: unknown; error: QmpErrorBody };

/** query-status's runstate (qapi/run-state.json RunState). */
export type QemuRunState =
  | 'debug'
  | 'inmigrate'
  | 'internal-error'
  | 'io-error'
  | 'paused'
  | 'postmigrate'
  | 'prelaunch'
  | 'finish-migrate'
  | 'restore-vm'
  | 'running'
  | 'save-vm'
  | 'shutdown'
  | 'suspended'
  | 'watchdog'
  | 'guest-panicked'
  | 'colo';

/** query-migrate's answer, the fields we read. */
export interface MigrationInfo {
  status?: 'none' | 'setup' | 'cancelling' | 'cancelled' | 'active' | 'postcopy-active' | 'completed' | 'failed' | 'device' | 'wait-unplug' | 'pre-switchover';
  'error-desc'?: string;
  'total-time'?: number;
  ram?: { total: number; transferred: number; remaining: number; 'mbps'?: number };
}

export function isQmpEvent(message: unknown): message is QmpEvent {
  return typeof message === 'object' && message !== null && typeof (message as { event?: unknown }).event === 'string';
}

export function isQmpGreeting(message: unknown): message is QmpGreeting {
  return typeof message === 'object' && message !== null && 'QMP' in message;
}
