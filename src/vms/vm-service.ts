import type { EventEmitter } from 'node:events';
import type {
  DiskAttachment,
  ExecResult,
  ExecSpec,
  HostStopResult,
  ImageInfo,
  OperationContext,
  VmCreateSpec,
  VmState,
  VmAction,
  VmUpdateSpec,
  VmDiskAddInput,
  VmDvdSpec,
  VmMoveStorageInput,
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
  /**
   * The host's shutdown step (Hyper-V's automatic stop action): every running or paused VM is
   * saved, shut down or turned off as its config says, all at once. A VM that was running keeps
   * its running marker, so `start-if-running` starts it again after the host's next boot.
   */
  stopVmsForHost(ctx: OperationContext): Promise<HostStopResult[]>;

  /** The VM's disks as in vm.json. */
  listDisks(ref: string): DiskAttachment[];
  /** Every check addDisk makes, without changing anything (the API's check before it answers). */
  validateAddDisk(ref: string, spec: VmDiskAddInput): Promise<{ disk: DiskAttachment; create: { size: number } | null }>;
  /**
   * Attaches a disk: an existing file or device, or a new empty disk in the VM's folder; the
   * first free slot when none is given. Hot-added while running (SCSI, virtio; IDE only while
   * off); persisted in vm.json after the device change, undone if the persist fails.
   */
  addDisk(ref: string, spec: VmDiskAddInput): Promise<VmView>;
  /** Detaches a disk (hot-removed while running); the file is kept. */
  removeDisk(ref: string, diskId: string): Promise<VmView>;
  /** Inserts an ISO into the DVD drive (live while running), or ejects it (null). */
  setDvd(ref: string, spec: VmDvdSpec): Promise<VmView>;

  /** Every check moveStorage makes, without changing anything. */
  validateMoveStorage(ref: string, spec: VmMoveStorageInput): Promise<unknown>;
  /** Live storage move of the VM's disks to a folder (a copy + switch + delete when it is off or saved). */
  moveStorage(ref: string, spec: VmMoveStorageInput, ctx: OperationContext): Promise<VmView>;

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
