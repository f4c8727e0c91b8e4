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

/** query-block's entry per BlockBackend, the fields we read. */
export interface BlockInfo {
  device: string;
  /** The front end's QOM path or id ("/machine/peripheral/disk-a/virtio-backend", "dvd0"). */
  qdev?: string;
  removable: boolean;
  locked: boolean;
  tray_open?: boolean;
  inserted?: { 'node-name': string; file: string; ro: boolean; drv: string };
}

/** query-named-block-nodes (flat) entry, the fields we read. */
export interface NamedBlockNode {
  'node-name': string;
  drv: string;
  file: string;
  ro: boolean;
  image?: { filename: string; format: string; 'virtual-size': number; 'backing-filename'?: string };
  'backing_file'?: string;
}

/** query-block-jobs entry (qapi/block-core.json BlockJobInfo). */
export interface BlockJobInfo {
  device: string;
  type: string;
  len: number;
  offset: number;
  ready: boolean;
  status: string;
  busy: boolean;
  paused: boolean;
  'io-status'?: string;
  error?: string;
}

/** query-block-exports entry. */
export interface BlockExportInfo {
  id: string;
  type: string;
  'node-name': string;
  'shutting-down': boolean;
}
