import type { VmConfig, VmState, VmView } from '../core/index.js';
import type { QemuInstance } from '../engine/qemu/index.js';

/**
 * What the service knows about one VM at run time: its configuration, what it is doing, and
 * the QEMU process that runs it. Only the VM service changes these.
 */
export class VmRecord {
  state: VmState;
  stateReason: string | null = null;
  instance: QemuInstance | null = null;
  runningSince: string | null = null;
  savedAt: string | null = null;
  /** Set while we stop QEMU on purpose, so its exit is not reported as a crash. */
  expectingExit = false;
  /** Stopped by the host's shutdown step: its running marker stays (start-if-running). */
  stoppedByHost = false;
  /** Cancels the operation in flight (a start or shut-down) when the VM is turned off. */
  operation: AbortController | null = null;

  constructor(
    public config: VmConfig,
    state: VmState,
    /** Where the VM lives now (VmStore.folder): asked, not kept, as a whole-folder move changes it. */
    private readonly folderOf: (id: string) => string,
  ) {
    this.state = state;
  }

  get name(): string {
    return this.config.name;
  }

  view(): VmView {
    return {
      config: this.config,
      state: this.state,
      stateReason: this.stateReason,
      pid: this.instance?.pid ?? null,
      runningSince: this.runningSince,
      savedAt: this.savedAt,
      folder: this.folderOf(this.config.id),
    };
  }
}
