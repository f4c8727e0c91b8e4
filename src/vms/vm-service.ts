import type { EventEmitter } from 'node:events';
import type {
  ExecResult,
  ExecSpec,
  ImageInfo,
  OperationContext,
  VmCreateSpec,
  VmState,
  VmAction,
  VmUpdateSpec,
  VmView,
} from '../core/index.js';

/** Events the VM service emits; the daemon forwards them on its event stream. */
export interface VmEvents {
  'vm-state': [{ vmId: string; name: string; state: VmState; reason: string | null }];
  'vm-created': [{ vmId: string; name: string }];
  'vm-updated': [{ vmId: string; name: string }];
  'vm-deleted': [{ vmId: string; name: string }];
}

/**
 * The VM service: the one owner of VMs. Every method names a VM by name or id. Errors are
 * VisorErrors (not-found, invalid with a field, conflict with advice). Long operations take an
 * OperationContext so the daemon can run them as jobs with progress and cancel.
 */
export interface VmService {
  readonly events: EventEmitter<VmEvents>;

  list(): VmView[];
  get(ref: string): VmView;
  /** Every check `create` makes, without writing anything: lets the API refuse before a job. */
  validateCreate(spec: VmCreateSpec): Promise<void>;
  create(spec: VmCreateSpec, ctx: OperationContext): Promise<VmView>;
  /** Throws the lifecycle refusal if `action` is illegal for the VM now (the API's check before a job). */
  checkAction(ref: string, action: VmAction): void;
  update(ref: string, spec: VmUpdateSpec): Promise<VmView>;
  delete(ref: string, options: { force: boolean }): Promise<void>;

  start(ref: string, ctx: OperationContext): Promise<VmView>;
  /** ACPI power button; waits up to `timeoutSeconds`, then turns off if `force`. */
  shutDown(ref: string, options: { timeoutSeconds: number; force: boolean }, ctx: OperationContext): Promise<VmView>;
  turnOff(ref: string): Promise<VmView>;
  save(ref: string, ctx: OperationContext): Promise<VmView>;
  pause(ref: string): Promise<VmView>;
  resume(ref: string): Promise<VmView>;
  restart(ref: string): Promise<VmView>;

  exec(ref: string, spec: ExecSpec, signal?: AbortSignal): Promise<ExecResult>;
  /** PNG bytes of the guest's screen. */
  screenshot(ref: string): Promise<Buffer>;
  /** The unix socket of the VM's serial console (the daemon proxies it to a WebSocket). */
  serialSocketPath(ref: string): string;
  /** The unix socket of the VM's VNC server (for the console proxy). */
  vncSocketPath(ref: string): string;

  images(): Promise<ImageInfo[]>;

  /** Reattaches running VMs after a daemon restart. Called once at start-up. */
  recover(): Promise<void>;
  /** Releases QMP connections and timers; never touches the VMs themselves. */
  close(): Promise<void>;
}
